"""Chapter 1 helpers: correctness of the hand-written assign_sub loop and its Keras twin."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers import data, linear


def test_line_data_is_reproducible_and_follows_the_line() -> None:
    x1, y1 = data.make_line_data(n=500, noise=0.5, seed=3)
    _, y2 = data.make_line_data(n=500, noise=0.5, seed=3)
    np.testing.assert_array_equal(y1, y2)
    assert x1.dtype == np.float32 and y1.dtype == np.float32
    slope, intercept = np.polyfit(x1, y1, 1)
    assert abs(slope - 3.0) < 0.1 and abs(intercept - 2.0) < 0.1


def test_one_step_is_minus_lr_times_closed_form_gradient() -> None:
    x, y = data.make_line_data(n=50, seed=1)
    model = linear.LinearModule(w=5.0, b=0.0)
    w0, b0, lr = 5.0, 0.0, 0.05
    # d/dw mean((w x + b - y)^2) = 2 mean((w x + b - y) x); d/db = 2 mean(w x + b - y)
    residual = w0 * x.astype(np.float64) + b0 - y
    grad_w = 2.0 * np.mean(residual * x)
    grad_b = 2.0 * np.mean(residual)
    loss_before = linear.train_step(model, x, y, learning_rate=lr)
    assert loss_before == pytest.approx(np.mean(residual**2), rel=1e-5)
    assert model.w.numpy() == pytest.approx(w0 - lr * grad_w, abs=1e-5)
    assert model.b.numpy() == pytest.approx(b0 - lr * grad_b, abs=1e-5)


def test_loop_converges_to_the_true_line() -> None:
    x, y = data.make_line_data(n=201, noise=1.0, seed=0)
    model = linear.LinearModule(w=5.0, b=0.0)
    history = linear.fit_linear(model, x, y, epochs=100, learning_rate=0.1)
    assert abs(model.w.numpy() - 3.0) < 0.15
    assert abs(model.b.numpy() - 2.0) < 0.15
    # and to the least-squares solution, which gradient descent must find exactly
    w_ls, b_ls = np.polyfit(x, y, 1)
    assert model.w.numpy() == pytest.approx(w_ls, abs=1e-3)
    assert model.b.numpy() == pytest.approx(b_ls, abs=1e-3)
    assert len(history.loss) == 101
    # gradient descent with a small enough step never increases a convex loss
    assert all(b <= a + 1e-6 for a, b in zip(history.loss, history.loss[1:], strict=False))


def test_history_starts_before_training() -> None:
    x, y = data.make_line_data(n=20, seed=0)
    history = linear.fit_linear(linear.LinearModule(), x, y, epochs=3)
    assert history.w[0] == 5.0 and history.b[0] == 0.0
    assert len(history.w) == len(history.b) == len(history.loss) == 4


def test_divergence_stops_with_the_epoch() -> None:
    x, y = data.make_line_data(n=20, seed=0)
    with pytest.raises(FloatingPointError, match=r"epoch \d+"):
        linear.fit_linear(linear.LinearModule(), x * 1e3, y, epochs=200, learning_rate=10.0)


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "error", "message"),
    [
        (np.zeros(5), np.zeros(4), {}, ValueError, "same length"),
        (np.zeros(5), np.zeros(5), {"learning_rate": 0.0}, ValueError, "learning_rate"),
        (np.zeros(5), np.zeros(5), {"learning_rate": -1.0}, ValueError, "learning_rate"),
        (np.zeros(5), np.zeros(5), {"learning_rate": "0.1"}, TypeError, "learning_rate"),
        (np.zeros(5), np.zeros(5), {"epochs": 0}, ValueError, "epochs"),
        (np.array([]), np.array([]), {}, ValueError, "x must not be empty"),
        (["a", "b"], [1.0, 2.0], {}, TypeError, "x must be a numeric array"),
        ([1.0, 2.0], None, {}, TypeError, "y must be a numeric array"),
        ([1.0, np.nan], [1.0, 2.0], {}, ValueError, "x contains NaN"),
        (np.zeros((5, 2)), np.zeros(5), {}, ValueError, "x must have 1 dimension"),
    ],
)
def test_bad_input_names_the_argument(x, y, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        linear.fit_linear(linear.LinearModule(), x, y, **kwargs)


def test_train_step_rejects_bad_learning_rate() -> None:
    with pytest.raises(ValueError, match="learning_rate"):
        linear.train_step(linear.LinearModule(), [1.0], [1.0], learning_rate=0)


def test_keras_linear_exposes_and_trains_its_weights() -> None:
    x, y = data.make_line_data(n=201, seed=0)
    model = linear.KerasLinear(w=5.0, b=0.0)
    assert len(model.trainable_weights) == 2
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    model.fit(x, y, epochs=100, batch_size=len(x), shuffle=False, verbose=0)
    assert abs(float(model.w.numpy()) - 3.0) < 0.15
    assert abs(float(model.b.numpy()) - 2.0) < 0.15


def test_keras_fit_follows_the_hand_written_loop() -> None:
    x, y = data.make_line_data(n=201, seed=0)
    module = linear.LinearModule()
    history = linear.fit_linear(module, x, y, epochs=10, learning_rate=0.1)
    keras_model = linear.KerasLinear()
    keras_model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    fit_history = keras_model.fit(x, y, epochs=10, batch_size=len(x), shuffle=False, verbose=0)
    assert float(keras_model.w.numpy()) == pytest.approx(history.w[-1], abs=1e-5)
    assert float(keras_model.b.numpy()) == pytest.approx(history.b[-1], abs=1e-5)
    # fit reports the loss measured during each epoch, i.e. before its update
    np.testing.assert_allclose(fit_history.history["loss"], history.loss[:-1], rtol=1e-5)


def test_raw_variables_in_a_keras_model_are_not_trained() -> None:
    """The trap Chapter 1 shows: Keras 3 does not track raw tf.Variable attributes."""

    class RawVariables(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(5.0)
            self.b = tf.Variable(0.0)

        def call(self, x):
            return self.w * x + self.b

    model = RawVariables()
    assert model.trainable_weights == []
    x, y = data.make_line_data(n=20, seed=0)
    model.compile(optimizer="sgd", loss="mse")
    with pytest.warns(UserWarning, match="does not have any trainable weights"):
        model.fit(x, y, epochs=2, batch_size=20, verbose=0)
    assert model.w.numpy() == 5.0


def test_mse_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="same shape"):
        linear.mse(tf.zeros((4,)), tf.zeros((4, 1)))
