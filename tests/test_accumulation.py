"""Gradient accumulation by hand: equal to Keras's option bit for bit, to one big batch to rounding."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers import models
from tutorial_helpers.accumulation import make_accumulating_train_step
from tutorial_helpers.compare import max_weight_difference
from tutorial_helpers.data import make_regression_data

X, Y = make_regression_data(256, seed=1)
MSE = keras.losses.MeanSquaredError()


def net():
    return models.make_mlp(3, (16, 16), seed=6)


def accumulate(optimizer, steps=4, batch=32):
    model = net()
    step = make_accumulating_train_step(model, optimizer, MSE, steps=steps)
    for start in range(0, len(X), batch):
        step(X[start:start + batch], Y[start:start + batch])
    return model


@pytest.mark.parametrize("make", [lambda **k: keras.optimizers.SGD(0.1, **k),
                                  lambda **k: keras.optimizers.Adam(0.01, **k)], ids=["sgd", "adam"])
def test_equals_one_big_batch_and_keras_option(make) -> None:
    hand_optimizer = make()
    by_hand = accumulate(hand_optimizer)
    big = net()
    big.compile(optimizer=make(), loss=MSE)
    big.fit(X, Y, batch_size=128, shuffle=False, verbose=0)
    option = net()
    option.compile(optimizer=make(gradient_accumulation_steps=4), loss=MSE)
    option.fit(X, Y, batch_size=32, shuffle=False, verbose=0)
    assert int(hand_optimizer.iterations) == 2
    assert max_weight_difference(by_hand, option) == 0.0
    assert 0.0 < max_weight_difference(by_hand, big) < 1e-6  # rounding only, and not a no-op


def test_the_mean_gradient_is_the_big_batch_gradient_in_numbers() -> None:
    model = net()
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        big = tape.gradient(MSE(Y[:128], model(X[:128])), variables)
    parts = []
    for start in range(0, 128, 32):
        with tf.GradientTape() as tape:
            parts.append(tape.gradient(MSE(Y[start:start + 32], model(X[start:start + 32])), variables))
    for i, gradient in enumerate(big):
        mean = np.mean([p[i].numpy() for p in parts], axis=0)
        np.testing.assert_allclose(mean, gradient.numpy(), atol=1e-6)


def test_one_step_is_plain_training() -> None:
    optimizer = keras.optimizers.SGD(0.1)
    by_hand = accumulate(optimizer, steps=1, batch=64)
    plain = net()
    plain.compile(optimizer=keras.optimizers.SGD(0.1), loss=MSE)
    plain.fit(X, Y, batch_size=64, shuffle=False, verbose=0)
    assert int(optimizer.iterations) == 4
    assert max_weight_difference(by_hand, plain) == 0.0


def test_penalties_count_as_in_one_big_batch() -> None:
    def penalized():
        return models.make_mlp(3, (16,), seed=6, kernel_regularizer=keras.regularizers.L2(0.01))

    by_hand = penalized()
    step = make_accumulating_train_step(by_hand, keras.optimizers.SGD(0.1), MSE, steps=4)
    for start in range(0, 128, 32):
        step(X[start:start + 32], Y[start:start + 32])
    big = penalized()
    big.compile(optimizer=keras.optimizers.SGD(0.1), loss=MSE, jit_compile=False)
    big.fit(X[:128], Y[:128], batch_size=128, shuffle=False, verbose=0)
    assert max_weight_difference(by_hand, big) < 1e-6
