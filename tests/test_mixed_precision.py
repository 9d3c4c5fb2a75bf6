"""Loss scaling: Keras's LossScaleOptimizer, the written-out rule, and fit() under mixed_float16."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers.compare import max_weight_difference
from tutorial_helpers.data import make_regression_data
from tutorial_helpers.mixed_precision import apply_with_loss_scale, make_scaled_train_step, policy

X, Y = make_regression_data(256, seed=2)
MSE = keras.losses.MeanSquaredError()


def net():
    with policy("mixed_float16"):
        keras.utils.set_random_seed(1)
        return keras.Sequential([
            keras.Input((3,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(1, dtype="float32"),
        ])


def test_policy_is_restored_even_after_an_error() -> None:
    with pytest.raises(RuntimeError), policy("mixed_float16"):
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        raise RuntimeError
    assert keras.mixed_precision.global_policy().name == "float32"
    assert net().layers[0].compute_dtype == "float16"


def test_an_overflowing_step_is_skipped_and_the_scale_halved() -> None:
    model = net()
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.01), initial_scale=2.0**40)
    step = make_scaled_train_step(model, optimizer, MSE)
    before = model.get_weights()
    step(X[:32], Y[:32])
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))
    assert float(optimizer.dynamic_scale) == 2.0**39
    assert int(optimizer.iterations) == 0
    while int(optimizer.iterations) == 0:  # halves until the gradients fit in float16
        step(X[:32], Y[:32])
    assert float(optimizer.dynamic_scale) < 2.0**39
    assert not all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_the_written_out_rule_equals_loss_scale_optimizer() -> None:
    keras_model, hand_model = net(), net()
    optimizer = keras.optimizers.LossScaleOptimizer(
        keras.optimizers.Adam(0.01), initial_scale=2.0**19, dynamic_growth_steps=3)
    keras_step = make_scaled_train_step(keras_model, optimizer, MSE)
    inner, scale, good = keras.optimizers.Adam(0.01), tf.Variable(2.0**19), tf.Variable(0)

    @tf.function
    def hand_step(x, y):
        with tf.GradientTape() as tape:
            scaled = MSE(y, hand_model(x, training=True)) * scale
        gradients = tape.gradient(scaled, hand_model.trainable_variables)
        return apply_with_loss_scale(inner, scale, good, gradients, hand_model.trainable_variables, 3)

    applied = []
    for start in list(range(0, 256, 32)) * 2:
        keras_step(X[start:start + 32], Y[start:start + 32])
        applied.append(bool(hand_step(X[start:start + 32], Y[start:start + 32])))
        assert float(scale) == float(optimizer.dynamic_scale)
        assert max_weight_difference(keras_model, hand_model) == 0.0
    assert not applied[0] and applied.count(True) > len(applied) // 2  # overflow first, then mostly steps
    assert int(inner.iterations) == int(optimizer.iterations) == sum(applied)


def test_the_custom_loop_equals_fit_under_the_policy() -> None:
    fitted, looped = net(), net()
    fitted.compile(optimizer=keras.optimizers.Adam(0.01), loss=MSE)
    assert isinstance(fitted.optimizer, keras.optimizers.LossScaleOptimizer)
    fitted.fit(X, Y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(0.01))
    step = make_scaled_train_step(looped, optimizer, MSE)
    for _ in range(2):
        for start in range(0, 256, 32):
            step(X[start:start + 32], Y[start:start + 32])
    assert max_weight_difference(fitted, looped) == 0.0


def test_the_model_penalties_are_trained_as_fit_trains_them() -> None:
    def penalized():
        with policy("mixed_float16"):
            keras.utils.set_random_seed(1)
            return keras.Sequential([
                keras.Input((3,)),
                keras.layers.Dense(32, activation="relu", kernel_regularizer=keras.regularizers.L2(0.01)),
                keras.layers.Dense(1, dtype="float32"),
            ])

    fitted, looped = penalized(), penalized()
    fitted.compile(optimizer=keras.optimizers.SGD(0.05), loss=MSE, jit_compile=False)
    fitted.fit(X, Y, batch_size=64, shuffle=False, verbose=0)
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.05))
    step = make_scaled_train_step(looped, optimizer, MSE)
    for start in range(0, 256, 64):
        step(X[start:start + 64], Y[start:start + 64])
    assert max_weight_difference(fitted, looped) == 0.0
