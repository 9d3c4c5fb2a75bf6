"""Chapter 18: an exponential moving average (EMA) of the weights, kept by the loop.

After every optimizer step the average moves a little towards the weights::

    average = momentum * average + (1 - momentum) * weights

and on the first step it *becomes* the weights.  This is what Keras's
optimizers do with ``use_ema=True, ema_momentum=momentum``
(``BaseOptimizer._update_model_variables_moving_average``): the same
operations in the same order, so the averages agree bit for bit.  Keras keeps
the average inside the optimizer and ``fit()`` copies it into the model after
its last epoch (``optimizer.finalize_variable_values``); a hand-written loop
decides itself when to look at the average (:meth:`WeightAverage.swapped_in`)
and when to keep it (:meth:`WeightAverage.copy_to`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras
import tensorflow as tf

from tutorial_helpers.validation import _describe, check_number


def _check_variables(variables: object) -> list:
    if not isinstance(variables, (list, tuple)) or not variables:
        raise TypeError(
            "variables must be a non-empty list of variables, such as model.trainable_variables, "
            f"got {_describe(variables) if not isinstance(variables, (list, tuple)) else 'an empty list'}"
        )
    for variable in variables:
        if not isinstance(variable, (tf.Variable, keras.Variable)):
            raise TypeError(f"variables must hold variables, got {_describe(variable)}")
        if not tf.as_dtype(variable.dtype).is_floating:
            raise TypeError(f"variables must be floating-point, got {variable.dtype} ({variable.name})")
    return list(variables)


class WeightAverage:
    """An exponential moving average of variables, updated after each optimizer step.

    ``WeightAverage(model.trainable_variables, momentum=0.99)`` keeps one
    non-trainable copy of each variable.  Call :meth:`update` after every
    ``optimizer.apply`` (inside the compiled step is fine); it equals
    ``keras.optimizers.*(use_ema=True, ema_momentum=momentum)`` bit for bit.
    """

    def __init__(self, variables: list, momentum: float = 0.99) -> None:
        self.variables = _check_variables(variables)
        self.momentum = check_number(momentum, "momentum", minimum=0, maximum=1, exclusive_maximum=True)
        self.averages = [
            tf.Variable(tf.convert_to_tensor(v), trainable=False, name="average") for v in self.variables
        ]
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="average_step")

    def update(self) -> None:
        """Move every average towards its variable; on the first call, copy the variable."""
        not_first_step = tf.not_equal(self.step, 0)
        for variable, average in zip(self.variables, self.averages, strict=True):
            # momentum is 0 on the first step, so the average becomes the variable (as in Keras)
            momentum = tf.cast(not_first_step, average.dtype) * self.momentum
            average.assign(momentum * average + (1 - momentum) * tf.convert_to_tensor(variable))
        self.step.assign_add(1)

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Inside the ``with`` block the variables hold the averages; the trained values come back after.

        Use it to evaluate or save the averaged model in the middle of
        training.  The trained values are restored even if the block raises.
        """
        trained = [tf.identity(v) for v in self.variables]  # snapshots: a later assign does not change them
        try:
            for variable, average in zip(self.variables, self.averages, strict=True):
                variable.assign(average)
            yield
        finally:
            for variable, value in zip(self.variables, trained, strict=True):
                variable.assign(value)

    def copy_to(self) -> None:
        """Overwrite the variables with their averages for good (``finalize_variable_values`` in Keras)."""
        for variable, average in zip(self.variables, self.averages, strict=True):
            variable.assign(average)
