"""Chapter 18: a compiled train step that survives freezing and unfreezing layers.

A ``tf.function`` step reads ``model.trainable_variables`` once, when it is
traced.  After ``base.trainable = True`` the old graph still updates only the
variables it saw: the base stays frozen, and nothing says so.  A Keras
optimizer has the same memory: built on the head's variables, it refuses new
ones (``ValueError: Unknown variable: ... This optimizer can only be called for
the variables it was originally built with``), so the unfrozen phase needs a
new optimizer (usually with a smaller learning rate anyway).

:class:`RetracingStep` compares the trainable variables before each call with
the ones its current ``tf.function`` was traced for, and makes a new
``tf.function`` when they differ or when the optimizer is replaced.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tutorial_helpers.steps import LossFn, total_loss
from tutorial_helpers.validation import _describe, check_loss_fn, check_optimizer


class RetracingStep:
    """A compiled train step that is traced again whenever ``model.trainable_variables`` changes.

    ``step(x, y)`` runs one step (forward with ``training=True``, the loss plus
    the model's own losses, ``optimizer.apply``) and returns the loss.
    ``step.traces`` counts the ``tf.function``s made so far: one per phase.
    For the unfrozen phase give a new optimizer with :meth:`set_optimizer`.
    """

    def __init__(self, model: keras.Model, optimizer: keras.optimizers.Optimizer, loss_fn: LossFn) -> None:
        if not isinstance(model, keras.Model):
            raise TypeError(f"model must be a keras.Model, got {_describe(model)}")
        check_optimizer(optimizer)
        check_loss_fn(loss_fn)
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.traces = 0
        self._function = None
        self._traced_for: list = []  # what the current function updates (held, so no id is reused)

    def set_optimizer(self, optimizer: keras.optimizers.Optimizer) -> None:
        """Use ``optimizer`` from the next step on (a new ``tf.function`` is made for it)."""
        check_optimizer(optimizer)
        self.optimizer = optimizer
        self._function = None

    def _check_optimizer(self, variables: list) -> None:
        """Refuse, before Keras does, an optimizer built for other variables."""
        if not self.optimizer.built:
            return
        known = {id(v) for v in self.optimizer._trainable_variables}  # as SwapEMAWeights reads it
        new = [v.path for v in variables if id(v) not in known]
        if new:
            raise ValueError(
                f"the optimizer was built for {len(known)} variables and cannot update {len(new)} new "
                f"ones ({', '.join(new[:3])}{', ...' if len(new) > 3 else ''}): the trainable variables "
                "changed (a layer was unfrozen). Give a new optimizer with step.set_optimizer(...), "
                "e.g. with a smaller learning rate for fine-tuning"
            )

    def _step(self, x, y) -> tf.Tensor:
        """The step body; its Python runs only while tracing."""
        with tf.GradientTape() as tape:
            y_pred = self.model(x, training=True)  # 1. forward (an unbuilt model makes its variables here)
            loss = total_loss(self.model, self.loss_fn, y, y_pred, None)  # 2. loss + the model's own losses
        variables = self.model.trainable_variables  # read now, at tracing: the graph keeps this list
        self._traced_for = list(variables)
        gradients = tape.gradient(loss, variables)  # 3. backward
        self.optimizer.apply(gradients, variables)  # 4. update
        return loss

    def __call__(self, x, y) -> tf.Tensor:
        """One step on the batch ``(x, y)``; returns the loss."""
        variables = self.model.trainable_variables
        if self._function is None or [id(v) for v in variables] != [id(v) for v in self._traced_for]:
            self._check_optimizer(variables)  # before tracing: a clear message, not Keras's
            self._function = tf.function(self._step, reduce_retracing=True, autograph=False)
            self.traces += 1
        return self._function(x, y)
