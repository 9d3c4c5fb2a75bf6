"""Chapter 3: gradients that never arrive; Chapter 6: measuring and clipping gradients."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tutorial_helpers.validation import check_positive_number


def check_connected(gradients: Sequence[tf.Tensor | None], variables: Sequence[tf.Variable]) -> None:
    """Raise ``ValueError`` naming every variable whose gradient is ``None``.

    A ``None`` gradient means the loss does not reach the variable through the
    tape (an integer cast, a NumPy round trip, an unused layer, a forward pass
    outside the tape; Chapter 3).  Keras's ``optimizer.apply`` only warns and
    skips such a variable, so a run would silently leave it untrained.  Inside
    a ``tf.function`` the check runs while tracing: it costs nothing per step.
    """
    gradients, variables = list(gradients), list(variables)
    if len(gradients) != len(variables):
        raise ValueError(
            f"gradients has {len(gradients)} entries but variables has {len(variables)}: "
            "pass the same list to tape.gradient and here"
        )
    missing = [getattr(v, "path", v.name) for g, v in zip(gradients, variables, strict=True) if g is None]
    if missing:
        raise ValueError(
            f"no gradient for {missing}: the loss does not reach them through the tape "
            "(an integer cast, a NumPy round trip, an unused layer, or a forward pass "
            "outside the tape; Chapter 3)"
        )


def global_norm(gradients: Sequence[tf.Tensor | None]) -> tf.Tensor:
    """The L2 norm of all gradients taken together, ``sqrt(sum_i ||g_i||^2)``; ``None``s are skipped."""
    return tf.linalg.global_norm([g for g in gradients if g is not None])


def clip_gradients(
    gradients: Sequence[tf.Tensor | None],
    *,
    global_clipnorm: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
) -> list[tf.Tensor | None]:
    """Clip gradients by their global norm, each tensor by its own norm, or each value.

    ``global_clipnorm=c`` rescales *all* gradients by ``c / global_norm`` when the
    global norm exceeds ``c``: the update keeps its direction.  ``clipnorm=c``
    rescales each tensor separately to norm at most ``c``: the direction of the
    whole update can change.  Gradients already within the limit are returned
    unchanged.  ``clipvalue=c`` clips every element to ``[-c, c]``
    (``tf.clip_by_value``, what an optimizer's ``clipvalue`` does): the
    direction changes too, coordinate by coordinate.  Give at most one of the
    three; with none, the gradients are returned as they are.
    """
    if isinstance(gradients, (tf.Tensor, tf.Variable, np.ndarray)):
        raise TypeError(
            "gradients must be a list of tensors (one per variable), got a single "
            f"{type(gradients).__name__}: wrap it in a list, [gradient]"
        )
    settings = {"global_clipnorm": global_clipnorm, "clipnorm": clipnorm, "clipvalue": clipvalue}
    given = [name for name, value in settings.items() if value is not None]
    if len(given) > 1:
        raise ValueError(
            f"give at most one of global_clipnorm, clipnorm and clipvalue, got {', '.join(given)}"
        )
    for name in given:
        check_positive_number(settings[name], name)
    gradients = list(gradients)
    if not gradients:
        return gradients
    if global_clipnorm is not None:
        clipped, _ = tf.clip_by_global_norm(gradients, float(global_clipnorm))
        return list(clipped)
    if clipnorm is not None:
        return [None if g is None else tf.clip_by_norm(g, float(clipnorm)) for g in gradients]
    if clipvalue is not None:
        c = float(clipvalue)
        return [None if g is None else tf.clip_by_value(g, -c, c) for g in gradients]
    return gradients
