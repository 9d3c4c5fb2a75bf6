"""Clipping keeps the promised norms; every optimizer of Chapter 6 makes progress."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers import data, loops, optim
from tutorial_helpers.compare import max_weight_difference
from tutorial_helpers.gradients import check_connected, clip_gradients, global_norm


@pytest.fixture
def gradients() -> list[tf.Tensor]:
    return [tf.constant([[3.0, 4.0]]), tf.constant([12.0]), None]  # norms 5 and 12: global 13


def test_global_norm_skips_none(gradients) -> None:
    assert float(global_norm(gradients)) == pytest.approx(13.0)


def test_global_clipping_caps_the_norm_and_keeps_the_direction(gradients) -> None:
    clipped = clip_gradients(gradients, global_clipnorm=1.0)
    assert float(global_norm(clipped)) == pytest.approx(1.0, rel=1e-6)
    assert clipped[2] is None
    np.testing.assert_allclose(clipped[0].numpy(), gradients[0].numpy() / 13.0, rtol=1e-6)
    np.testing.assert_allclose(clipped[1].numpy(), gradients[1].numpy() / 13.0, rtol=1e-6)


def test_per_tensor_clipping_caps_each_tensor(gradients) -> None:
    clipped = clip_gradients(gradients, clipnorm=6.0)
    np.testing.assert_allclose(clipped[0].numpy(), gradients[0].numpy())  # norm 5 < 6: unchanged
    assert float(tf.norm(clipped[1])) == pytest.approx(6.0)
    # the two tensors were scaled differently: the global direction changed
    assert float(global_norm(clipped)) == pytest.approx(np.hypot(5.0, 6.0), rel=1e-6)


def test_gradients_within_the_limit_are_unchanged(gradients) -> None:
    for kwargs in ({"global_clipnorm": 13.5}, {"clipnorm": 20.0}, {}):
        clipped = clip_gradients(gradients, **kwargs)
        for before, after in zip(gradients[:2], clipped[:2], strict=True):
            np.testing.assert_array_equal(before.numpy(), after.numpy())


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [({"global_clipnorm": 0.0}, ValueError, "global_clipnorm"), ({"clipnorm": -1.0}, ValueError, "clipnorm"),
     ({"clipnorm": "1"}, TypeError, "clipnorm"),
     ({"clipnorm": 1.0, "global_clipnorm": 1.0}, ValueError, "at most one"),
     ({"clipvalue": 0.0}, ValueError, "clipvalue must be a positive number"),
     ({"clipvalue": 1.0, "clipnorm": 1.0}, ValueError, "got clipnorm, clipvalue")],
)
def test_bad_clip_settings(gradients, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        clip_gradients(gradients, **kwargs)


def build() -> keras.Model:
    """The small network both clipping comparisons train, from the same seed each time."""
    keras.utils.set_random_seed(3)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(1)])


def test_loop_clipping_equals_the_optimizers_global_clipnorm() -> None:
    x, y = data.make_regression_data(n=256, seed=0)

    reference = build()
    reference.compile(optimizer=keras.optimizers.SGD(0.05, global_clipnorm=0.5), loss="mse")
    fitted = reference.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    model = build()
    history = loops.train(model, (x, y), batch_size=32, optimizer=keras.optimizers.SGD(0.05),
                          loss_fn=keras.losses.MeanSquaredError(), epochs=3, verbose=0,
                          global_clipnorm=0.5)
    assert max_weight_difference(model, reference) <= 1e-6
    np.testing.assert_allclose(history["loss"], fitted.history["loss"], rtol=1e-6)
    unclipped = build()
    loops.train(unclipped, (x, y), batch_size=32, optimizer=keras.optimizers.SGD(0.05),
                loss_fn=keras.losses.MeanSquaredError(), epochs=3, verbose=0)
    assert max_weight_difference(unclipped, model) > 1e-3  # clipping did change the run


def test_loop_rejects_bad_clip_settings() -> None:
    x, y = data.make_regression_data(n=8, seed=0)
    with pytest.raises(ValueError, match="global_clipnorm"):
        loops.train(keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]), (x, y), batch_size=4,
                    optimizer=keras.optimizers.SGD(0.1), loss_fn=keras.losses.MeanSquaredError(),
                    epochs=1, verbose=0, global_clipnorm=-1.0)


OPTIMIZERS = {
    "SGD": lambda: keras.optimizers.SGD(0.02),
    "SGD+momentum": lambda: keras.optimizers.SGD(0.02, momentum=0.9),
    "Adam": lambda: keras.optimizers.Adam(0.1),
    "RMSprop": lambda: keras.optimizers.RMSprop(0.05),
    "Adagrad": lambda: keras.optimizers.Adagrad(0.5),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_optimizer_decreases_the_loss(name: str) -> None:
    losses = optim.minimize(optim.elongated_bowl, [-2.0, 2.0], OPTIMIZERS[name](), steps=100)
    assert len(losses) == 101
    assert losses[-1] < 0.01 * losses[0], f"{name}: {losses[0]:.3f} -> {losses[-1]:.3f}"


def test_the_bowl_minimum() -> None:
    assert float(optim.elongated_bowl(tf.constant(optim.BOWL_MINIMUM))) == 0.0


def test_minimize_rejects_bad_steps() -> None:
    with pytest.raises(ValueError, match="steps"):
        optim.minimize(optim.elongated_bowl, [0.0, 0.0], keras.optimizers.SGD(0.1), steps=0)


def test_value_clipping_clips_each_element(gradients) -> None:
    clipped = clip_gradients(gradients, clipvalue=4.0)
    for before, after in zip(gradients[:2], clipped[:2], strict=True):
        np.testing.assert_array_equal(after.numpy(), np.clip(before.numpy(), -4.0, 4.0))
    assert clipped[2] is None
    assert [float(tf.reduce_max(tf.abs(g))) for g in clipped[:2]] == [4.0, 4.0]


def test_loop_value_clipping_equals_the_optimizers_clipvalue() -> None:
    x, y = data.make_regression_data(n=256, seed=0)

    reference = build()
    reference.compile(optimizer=keras.optimizers.SGD(0.05, clipvalue=0.05), loss="mse", jit_compile=False)
    fitted = reference.fit(x * 10.0, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    model = build()
    history = loops.train(model, (x * 10.0, y), batch_size=32, optimizer=keras.optimizers.SGD(0.05),
                          loss_fn=keras.losses.MeanSquaredError(), epochs=3, verbose=0, clipvalue=0.05)
    assert max_weight_difference(model, reference) == 0.0
    assert history["loss"] == fitted.history["loss"]
    unclipped = build()
    loops.train(unclipped, (x * 10.0, y), batch_size=32, optimizer=keras.optimizers.SGD(0.05),
                loss_fn=keras.losses.MeanSquaredError(), epochs=3, verbose=0)
    assert max_weight_difference(unclipped, model) > 1e-3  # clipping did change the run


@pytest.mark.parametrize("steepness", [1.0, 20.0, 1000.0])
def test_make_bowl_is_the_formula(steepness: float) -> None:
    bowl = optim.make_bowl(steepness)
    v = tf.constant([0.5, 1.5])
    assert float(bowl(v)) == pytest.approx(1.5**2 + steepness * 2.5**2, rel=1e-6)
    assert float(bowl(tf.constant(optim.BOWL_MINIMUM))) == 0.0
    if steepness == 20.0:
        assert float(bowl(v)) == float(optim.elongated_bowl(v))


def test_conditioning_decides_between_sgd_and_adaptive_methods() -> None:
    # at condition number 1000, SGD's largest stable rate (< 1/1000) crawls on the flat axis
    bowl = optim.make_bowl(1000.0)
    sgd = optim.minimize(bowl, [-2.0, 2.0], keras.optimizers.SGD(0.0009), steps=100)
    rmsprop = optim.minimize(bowl, [-2.0, 2.0], keras.optimizers.RMSprop(0.05), steps=100)
    flat_axis_left = 16.0 * (1 - 2 * 0.0009) ** 200  # closed form for the flat coordinate
    assert sgd[-1] == pytest.approx(flat_axis_left, rel=0.01)
    assert rmsprop[-1] < 0.01 * sgd[-1]


# ------------------------------------------------------------------ Chapter 3: None gradients
def test_check_connected_names_every_variable_without_a_gradient() -> None:
    keras_variable = keras.Variable(1.0, name="kept")
    raw = tf.Variable(2.0, name="raw_variable")
    unused = keras.Variable(3.0, name="unused")
    check_connected([tf.ones(()), tf.ones(())], [keras_variable, raw])  # all connected: no error
    with pytest.raises(ValueError, match="unused") as caught:
        check_connected([tf.ones(()), None, None], [keras_variable, unused, raw])
    assert "raw_variable" in str(caught.value) and "kept" not in str(caught.value)
    with pytest.raises(ValueError, match="gradients has 1 entries but variables has 2"):
        check_connected([tf.ones(())], [keras_variable, raw])


def test_the_books_loop_refuses_a_layer_the_loss_never_reaches() -> None:
    """Keras's optimizer only warns about a None gradient; loops.train stops at the first trace."""

    class TwoHeads(keras.Model):
        def __init__(self):
            super().__init__()
            self.head = keras.layers.Dense(1, name="head")
            self.unused_head = keras.layers.Dense(1, name="unused_head")

        def build(self, input_shape):
            self.head.build(input_shape)
            self.unused_head.build(input_shape)

        def call(self, x):
            return self.head(x)

    x = np.ones((8, 3), "float32")
    model = TwoHeads()
    model.build((None, 3))
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="unused_head/kernel"):
        loops.train(model, (x, x[:, :1]), batch_size=4, epochs=1, verbose=0,
                    optimizer=keras.optimizers.SGD(0.1), loss_fn=keras.losses.MeanSquaredError())
    for w, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(w, b)  # stopped before any update
