"""Checkers for Chapter 18's exercises (fine-tuning and weight averaging; kept apart so that
``check.py`` stays small)."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from tutorial_helpers.check import _array, _run, _yours


def ema_update(your_fn: Callable) -> bool:
    """Chapter 18: ``your_fn(average, value, momentum, step)`` returns the new average.

    Keras's rule (``use_ema=True``): at ``step`` 0 the average becomes
    ``value``; after that ``momentum * average + (1 - momentum) * value``.
    ``average`` and ``value`` are tensors, ``momentum`` a float, ``step`` an int.
    """

    def body() -> str | None:
        rng = np.random.default_rng(18)
        values = rng.normal(2.0, 1.5, size=(6, 3)).astype(np.float32)
        momentum = 0.8
        average = np.zeros(3, np.float32)  # as Keras starts it; step 0 must not mix it in
        for step, value in enumerate(values):
            keras_rule = momentum * average.astype(np.float64) + (1 - momentum) * value
            swapped = (1 - momentum) * average.astype(np.float64) + momentum * value
            expected = value.astype(np.float64) if step == 0 else keras_rule
            got = _array(_yours(your_fn, tf.constant(average), tf.constant(value), momentum, step), (3,))
            if not np.allclose(got, expected, rtol=1e-5, atol=1e-6):
                hint = ""
                if step == 0 and np.allclose(got, keras_rule, rtol=1e-5, atol=1e-6):
                    hint = (" (you mixed the value into the starting average; at step 0 the average "
                            "becomes the value itself, as in Keras)")
                elif np.allclose(got, swapped, rtol=1e-5, atol=1e-6):
                    hint = (" (momentum and 1 - momentum are swapped: the old average keeps the weight "
                            "momentum, the new value gets 1 - momentum)")
                return (f"at step {step} got {got.round(4).tolist()}, expected "
                        f"{expected.round(4).tolist()}{hint}")
            average = expected.astype(np.float32)
        return None

    return _run("ema_update", body)


class _WatchedBatchNorm(keras.layers.BatchNormalization):
    """Records, on every call, whether it normalized with the batch's statistics (training mode)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.batch_mode: list[bool] = []

    def call(self, inputs, training=None, mask=None):
        self.batch_mode.append(bool(training is True and self.trainable))
        return super().call(inputs, training=training, mask=mask)


def _model() -> tuple[keras.Sequential, _WatchedBatchNorm]:
    """The pretrained-looking model: its moving statistics are not the fresh 0 and 1."""
    dense = dict(kernel_initializer=keras.initializers.GlorotUniform(seed=18), bias_initializer="zeros")
    bn = _WatchedBatchNorm(name="batch_norm")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, name="dense_1", **dense), bn,
                              keras.layers.Dense(2, name="dense_2", **dense)])
    bn.moving_mean.assign(np.linspace(-0.5, 0.5, 8).astype(np.float32))
    bn.moving_variance.assign(np.linspace(0.5, 2.0, 8).astype(np.float32))
    bn.batch_mode.clear()  # the call that built the model does not count
    return model, bn


def frozen_batchnorm(your_step: Callable) -> bool:
    """Chapter 18: ``your_step(model, x, y)`` runs ONE fine-tuning step of the whole model.

    The model is ``Dense(8) -> BatchNormalization -> Dense(2)``, as if
    pretrained.  Every ``Dense`` kernel must train, while the batch
    normalization layer keeps its moving statistics and normalizes with them
    (inference mode).  Either recipe passes: ``bn.trainable = False`` (the
    keras.io guide's: gamma and beta frozen too) or calling the layer with
    ``training=False`` (gamma and beta still train).  Choose the loss and the
    optimizer yourself (one new optimizer per call).
    """

    def body() -> str | None:
        model, bn = _model()
        rng = np.random.default_rng(18)
        x = tf.constant(rng.normal(1.0, 2.0, size=(32, 6)).astype(np.float32))
        y = tf.constant(rng.normal(size=(32, 2)).astype(np.float32))
        kernels = {name: model.get_layer(name).kernel.numpy() for name in ("dense_1", "dense_2")}
        stats = {"moving mean": bn.moving_mean.numpy(), "moving variance": bn.moving_variance.numpy()}
        _yours(your_step, model, x, y)
        for name, before in stats.items():
            after = (bn.moving_mean if name == "moving mean" else bn.moving_variance).numpy()
            if not np.array_equal(after, before):
                return (f"the {name} moved: batch normalization ran in training mode. Set "
                        "bn.trainable = False, or call it with training=False")
        if not bn.batch_mode:
            return "your step never called the model"
        if any(bn.batch_mode):
            return ("batch normalization normalized with the batch's statistics (training mode), "
                    "even if its moving statistics were put back: set bn.trainable = False, "
                    "or call it with training=False")
        for name, before in kernels.items():
            if np.array_equal(model.get_layer(name).kernel.numpy(), before):
                return (f"the kernel of {name} did not change: fine-tuning trains every Dense layer; "
                        "freeze only the batch normalization layer (not the model), and apply the "
                        "gradients of model.trainable_variables")
        return None

    return _run("frozen_batchnorm", body)
