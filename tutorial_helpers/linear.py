"""Chapter 1: a linear model ``y = W * x + b`` trained from first principles.

The pieces here are the ones Chapter 1 writes out in full: a ``tf.Module``
holding two variables, the mean-squared error, one gradient-descent step made
with ``tf.GradientTape`` and ``Variable.assign_sub``, and the loop around it.
``KerasLinear`` is the same model as a ``keras.Model`` whose weights ``fit()``
can see.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from tutorial_helpers.validation import (
    as_float_array,
    check_positive_int,
    check_positive_number,
    check_same_length,
)


class LinearModule(tf.Module):
    """``f(x) = w * x + b`` with scalar variables ``w`` and ``b``."""

    def __init__(self, w: float = 5.0, b: float = 0.0, name: str | None = None) -> None:
        super().__init__(name=name)
        self.w = tf.Variable(float(w), name="w")
        self.b = tf.Variable(float(b), name="b")

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        return self.w * x + self.b


def mse(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    """Mean squared error over all elements (one scalar for the whole batch)."""
    y_true = tf.convert_to_tensor(y_true, dtype=tf.float32)
    y_pred = tf.convert_to_tensor(y_pred, dtype=tf.float32)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape, got {y_true.shape} and {y_pred.shape}"
        )
    return tf.reduce_mean(tf.square(y_true - y_pred))


def _check_xy(x: object, y: object) -> tuple[np.ndarray, np.ndarray]:
    x_arr = as_float_array(x, "x", ndim=1)
    y_arr = as_float_array(y, "y", ndim=1)
    check_same_length(x_arr, y_arr)
    return x_arr, y_arr


def train_step(model: LinearModule, x: object, y: object, learning_rate: float) -> float:
    """One step of gradient descent on the whole batch; returns the loss *before* it.

    ``w <- w - learning_rate * dL/dw`` and likewise for ``b``, with the gradients
    taken by ``tf.GradientTape`` and the update made in place by ``assign_sub``.
    """
    learning_rate = check_positive_number(learning_rate, "learning_rate")
    x_arr, y_arr = _check_xy(x, y)
    return float(_step(model, tf.constant(x_arr), tf.constant(y_arr), learning_rate))


def _step(model: LinearModule, x: tf.Tensor, y: tf.Tensor, learning_rate: float) -> tf.Tensor:
    with tf.GradientTape() as tape:
        loss = mse(y, model(x))
    dw, db = tape.gradient(loss, [model.w, model.b])
    model.w.assign_sub(learning_rate * dw)
    model.b.assign_sub(learning_rate * db)
    return loss


@dataclass
class LinearHistory:
    """Parameters and loss before training (index 0) and after each epoch."""

    w: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)

    def record(self, model: LinearModule, loss: float) -> None:
        self.w.append(float(model.w.numpy()))
        self.b.append(float(model.b.numpy()))
        self.loss.append(float(loss))


def fit_linear(
    model: LinearModule,
    x: object,
    y: object,
    *,
    epochs: int = 10,
    learning_rate: float = 0.1,
    verbose: bool = False,
) -> LinearHistory:
    """Train ``model`` by full-batch gradient descent for ``epochs`` steps.

    Each epoch is one ``assign_sub`` step on all the data.  Returns a
    :class:`LinearHistory`; with ``verbose=True`` prints ``W``, ``b`` and the
    loss after every epoch.  Raises ``FloatingPointError`` naming the epoch if
    the loss stops being finite (a learning rate that is too large).
    """
    epochs = check_positive_int(epochs, "epochs")
    learning_rate = check_positive_number(learning_rate, "learning_rate")
    x_arr, y_arr = _check_xy(x, y)
    x_t, y_t = tf.constant(x_arr), tf.constant(y_arr)

    history = LinearHistory()
    history.record(model, mse(y_t, model(x_t)))
    for epoch in range(1, epochs + 1):
        _step(model, x_t, y_t, learning_rate)
        loss = float(mse(y_t, model(x_t)))
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"loss became {loss} at epoch {epoch}; lower learning_rate ({learning_rate})"
            )
        history.record(model, loss)
        if verbose:
            print(
                f"epoch {epoch:2d}: W = {history.w[-1]:.3f}, b = {history.b[-1]:.3f}, "
                f"loss = {loss:.5f}"
            )
    return history


class KerasLinear(keras.Model):
    """The linear model as a ``keras.Model``, with weights Keras can train.

    The weights are created with ``add_weight``, so they appear in
    ``trainable_weights`` and ``fit()`` updates them.  (A raw ``tf.Variable``
    attribute is not tracked by Keras 3: see Chapter 1.)
    """

    def __init__(self, w: float = 5.0, b: float = 0.0, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.w = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(w), name="w"
        )
        self.b = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(b), name="b"
        )

    def call(self, x: tf.Tensor) -> tf.Tensor:
        return self.w * x + self.b
