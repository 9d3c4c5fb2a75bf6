"""Chapter 6: running optimizers on a test function, to compare how they move."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from tutorial_helpers.validation import check_positive_int, check_positive_number

#: Minimum of :func:`elongated_bowl`.
BOWL_MINIMUM = (2.0, -1.0)


def make_bowl(steepness: float) -> Callable[[tf.Tensor], tf.Tensor]:
    """``f(v) = (v0 - 2)^2 + steepness (v1 + 1)^2``, minimum 0 at (2, -1).

    ``steepness`` is the bowl's condition number (the ratio of its curvatures):
    plain gradient descent needs a learning rate below ``1 / steepness`` to be
    stable, and then crawls along the flat axis.
    """
    steepness = check_positive_number(steepness, "steepness")

    def bowl(v: tf.Tensor) -> tf.Tensor:
        return tf.square(v[0] - 2.0) + steepness * tf.square(v[1] + 1.0)

    return bowl


_BOWL_20 = make_bowl(20.0)


def elongated_bowl(v: tf.Tensor) -> tf.Tensor:
    """``(v0 - 2)^2 + 20 (v1 + 1)^2``: a quadratic bowl 20 times steeper along one axis.

    Its minimum is 0 at (2, -1).  The mismatch of curvatures is what separates
    optimizers: a step size safe for the steep direction is slow for the flat one.
    It is ``make_bowl(20.0)``.
    """
    return _BOWL_20(v)


def minimize(
    function: Callable[[tf.Tensor], tf.Tensor],
    start: Sequence[float],
    optimizer: keras.optimizers.Optimizer,
    steps: int = 100,
) -> list[float]:
    """Minimize ``function`` from ``start`` with ``optimizer``.

    Returns ``steps + 1`` losses: before each step, and after the last one.
    """
    steps = check_positive_int(steps, "steps")
    variable = tf.Variable(list(start), dtype=tf.float32)

    @tf.function
    def step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = function(variable)
        optimizer.apply([tape.gradient(loss, variable)], [variable])
        return loss

    losses = [float(step()) for _ in range(steps)]
    losses.append(float(function(variable)))
    return losses
