"""Chapter 18's weight average: equal to Keras's ``use_ema=True`` bit for bit, a closed form, its checker."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers import check
from tutorial_helpers.ema import WeightAverage

MOMENTUM = 0.9


def build(seed: int = 1) -> keras.Sequential:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)]
    )


@pytest.fixture(scope="module")
def arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 + 0.1 * rng.normal(size=(240, 1))).astype(np.float32)
    return x, y


def batches(arrays, epochs: int = 1) -> list[tuple[tf.Tensor, tf.Tensor]]:
    x, y = arrays  # 15 batches of 16 per epoch, in order, as fit(shuffle=False) cuts them
    return [(tf.constant(x[i : i + 16]), tf.constant(y[i : i + 16])) for _ in range(epochs)
            for i in range(0, len(x), 16)]


def train(model: keras.Model, optimizer, data, average: WeightAverage | None = None) -> None:
    """The book's compiled step, with the average updated after the optimizer's step."""
    loss_fn = keras.losses.MeanSquaredError()

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        if average is not None:
            average.update()
        return loss

    for x, y in data:
        step(x, y)


def values(variables) -> list[np.ndarray]:
    return [np.array(v) for v in variables]


def test_the_average_equals_kerass_use_ema_bit_for_bit(arrays) -> None:
    ours = build()
    average = WeightAverage(ours.trainable_variables, MOMENTUM)
    train(ours, keras.optimizers.Adam(1e-2), batches(arrays, 2), average)  # 30 steps

    reference = build()
    optimizer = keras.optimizers.Adam(1e-2, use_ema=True, ema_momentum=MOMENTUM)
    train(reference, optimizer, batches(arrays, 2))
    assert int(optimizer.iterations) == int(average.step) == 30
    trained = values(reference.trainable_variables)
    for mine, theirs in zip(values(ours.trainable_variables), trained, strict=True):
        np.testing.assert_array_equal(mine, theirs)  # EMA does not change the training itself
    optimizer.finalize_variable_values(reference.trainable_variables)  # the average into the model
    for mine, theirs, before in zip(values(average.averages), values(reference.trainable_variables), trained,
                                    strict=True):
        np.testing.assert_array_equal(mine, theirs)  # measured: 0 difference, every element
        assert not np.array_equal(mine, before)  # and the average is not the trained weights
    assert max(np.abs(a - b).max() for a, b in zip(values(average.averages), trained, strict=True)) > 1e-2


def test_fit_with_use_ema_finalizes_by_itself_after_its_last_epoch(arrays) -> None:
    ours = build()
    average = WeightAverage(ours.trainable_variables, MOMENTUM)
    train(ours, keras.optimizers.Adam(1e-2), batches(arrays, 2), average)

    fitted = build()
    fitted.compile(optimizer=keras.optimizers.Adam(1e-2, use_ema=True, ema_momentum=MOMENTUM), loss="mse")
    fitted.fit(*arrays, batch_size=16, epochs=2, shuffle=False, verbose=0)
    # fit() called finalize_variable_values itself, once, after the last epoch: the model holds the
    # average (had it copied the average after epoch 1, epoch 2 would have trained from it: no equality)
    for mine, theirs, trained in zip(values(average.averages), values(fitted.trainable_variables),
                                     values(ours.trainable_variables), strict=True):
        np.testing.assert_array_equal(mine, theirs)
        assert not np.array_equal(theirs, trained)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_average_of_one_two_three_follows_the_closed_form(dtype: str) -> None:
    # with x_k = k the lag e_k = k - avg_k obeys e_1 = 0, e_k = m (e_(k-1) + 1),
    # so e_k = m (1 - m^(k-1)) / (1 - m)
    variable = tf.Variable(0.0, dtype=dtype)
    average = WeightAverage([variable], MOMENTUM)
    for k in range(1, 41):
        variable.assign(float(k))
        average.update()
        expected = k - MOMENTUM * (1 - MOMENTUM ** (k - 1)) / (1 - MOMENTUM)
        tolerance = 1e-6 if dtype == "float32" else 1e-14  # measured: at most 2.1e-7 and 4.7e-16 relative
        assert float(average.averages[0].numpy()) == pytest.approx(expected, rel=tolerance), k
    assert int(average.step) == 40 and float(variable.numpy()) == 40.0  # the variable is untouched


def test_swapped_in_swaps_and_restores_even_when_the_block_raises() -> None:
    model = build()
    average = WeightAverage(model.trainable_variables, 0.5)
    trained = values(model.trainable_variables)
    for variable, value in zip(model.trainable_variables, trained, strict=True):
        variable.assign(value + np.float32(1.0))
    average.update()  # the first update copies: the averages are trained + 1
    for variable, value in zip(model.trainable_variables, trained, strict=True):
        variable.assign(value)
    x = np.ones((2, 3), np.float32)
    with average.swapped_in():
        for variable, value in zip(model.trainable_variables, trained, strict=True):
            np.testing.assert_array_equal(variable.numpy(), value + np.float32(1.0))
        inside = model(x).numpy()
    for variable, value in zip(model.trainable_variables, trained, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)
    assert not np.array_equal(model(x).numpy(), inside)

    with pytest.raises(RuntimeError, match="inside"), average.swapped_in():
        raise RuntimeError("inside the with block")
    for variable, value in zip(model.trainable_variables, trained, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value)

    average.copy_to()  # for good
    for variable, value in zip(model.trainable_variables, trained, strict=True):
        np.testing.assert_array_equal(variable.numpy(), value + np.float32(1.0))


@pytest.mark.parametrize(
    ("variables", "momentum", "error", "message"),
    [
        ("model", 0.9, TypeError, "variables must be a non-empty list"),
        ([], 0.9, TypeError, "variables must be a non-empty list.*empty list"),
        ("numbers", 0.9, TypeError, "variables must hold variables"),
        ("ints", 0.9, TypeError, "variables must be floating-point"),
        ("ok", 1.0, ValueError, r"momentum must be a number in \[0, 1\)"),
        ("ok", -0.1, ValueError, "momentum"),
        ("ok", float("nan"), ValueError, "momentum"),
        ("ok", True, TypeError, "momentum"),
        ("ok", "0.9", TypeError, "momentum"),
    ],
)
def test_bad_inputs_name_the_argument(variables, momentum, error, message) -> None:
    model = build()
    named = {
        "model": model, "numbers": [np.zeros(3, np.float32)], "ints": [tf.Variable([1, 2])],
        "ok": model.trainable_variables,
    }
    given = named[variables] if isinstance(variables, str) else variables
    with pytest.raises(error, match=message):
        WeightAverage(given, momentum)


def keras_rule(average, value, momentum, step):
    return value if step == 0 else momentum * average + (1 - momentum) * value


def test_ema_update_checker_tells_right_from_wrong(capsys) -> None:
    assert check.ema_update(keras_rule) is True
    assert capsys.readouterr().out.strip() == "ema_update: correct"
    assert check.ema_update(lambda a, v, m, s: m * a + (1 - m) * v) is False  # no first step
    assert "at step 0 the average becomes the value itself" in capsys.readouterr().out
    assert check.ema_update(lambda a, v, m, s: keras_rule(a, v, 1 - m, s)) is False
    assert "momentum and 1 - momentum are swapped" in capsys.readouterr().out
    assert check.ema_update(lambda a, v, m, s: [1.0]) is False  # a result of the wrong shape
    assert "not yet" in capsys.readouterr().out
