"""Chapter 5: custom losses as serializable ``keras.losses.Loss`` subclasses.

Both work in ``compile()`` and in the hand-written loop of ``tutorial_helpers.loops``
(``loss_fn(y_true, y_pred, sample_weight=...)``), and survive
``get_config()`` / ``from_config()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from tutorial_helpers.validation import check_bool, check_number

#: Probabilities are clipped to [EPSILON, 1 - EPSILON] before taking logs, as Keras does.
EPSILON = 1e-7


def check_binary_labels(y_true: object, name: str = "y_true") -> None:
    """Raise ``ValueError`` unless every label is a number in ``[0, 1]`` (hard 0/1 or soft).

    Labels such as 3 or 7 (class indices given to a binary loss) would give a
    meaningless loss without an error.
    """
    values = np.asarray(y_true, dtype=np.float64)
    if not np.all(np.isfinite(values)) or values.min() < 0.0 or values.max() > 1.0:
        bad = values[~(np.isfinite(values) & (values >= 0.0) & (values <= 1.0))]
        raise ValueError(
            f"{name} must hold binary labels in [0, 1] (0/1, or soft labels), got values such as "
            f"{sorted(set(bad.tolist()))[:5]}; for class indices use a categorical loss"
        )


@keras.saving.register_keras_serializable(package="tutorial_helpers")
class BinaryFocalLoss(keras.losses.Loss):
    """Focal loss for imbalanced binary classification (Lin et al., 2017).

    ``FL = alpha_t * (1 - p_t)**gamma * BCE``, where ``p_t = y p + (1 - y)(1 - p)``
    is the probability the model gives the label (for hard labels, of the true
    class), ``alpha_t = y alpha + (1 - y)(1 - alpha)`` and ``BCE`` is the binary
    cross-entropy.  ``gamma`` > 0 down-weights easy, well-classified examples so
    training concentrates on the hard ones; with ``gamma=0`` it is
    ``alpha``-weighted binary cross-entropy.  Labels may be hard (0/1) or soft
    (any number in ``[0, 1]``).

    It equals Keras's built-in
    ``keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True)`` on hard
    and soft labels, probabilities and logits (the tests check this): use the
    built-in in your own work; this class is written out to show what a
    ``keras.losses.Loss`` subclass provides.  With ``from_logits=True`` the
    cross-entropy is computed from the logit itself (softplus), exact for any
    ``z``; probabilities are clipped to ``[1e-7, 1 - 1e-7]`` so the loss stays
    finite at exactly 0 and 1.
    The per-sample loss is the mean over the last axis.
    """

    def __init__(
        self,
        alpha: float = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        reduction: str | None = "sum_over_batch_size",
        name: str = "binary_focal_loss",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = check_number(alpha, "alpha", minimum=0.0, maximum=1.0)
        self.gamma = check_number(gamma, "gamma", minimum=0.0)
        self.from_logits = check_bool(from_logits, "from_logits")

    def check_targets(self, y_true: object, name: str = "y_true") -> None:
        """Raise ``ValueError`` for labels outside ``[0, 1]`` (the loops call this before training)."""
        check_binary_labels(y_true, name)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        y_pred = tf.convert_to_tensor(y_pred)
        y_true = tf.cast(y_true, y_pred.dtype)
        if tf.executing_eagerly():
            check_binary_labels(y_true.numpy())
        if self.from_logits:
            # BCE = y softplus(-z) + (1 - y) softplus(z): exact for any logit z
            cross_entropy = y_true * tf.nn.softplus(-y_pred) + (1.0 - y_true) * tf.nn.softplus(y_pred)
            one_minus_p_t = y_true * tf.sigmoid(-y_pred) + (1.0 - y_true) * tf.sigmoid(y_pred)
        else:
            p = tf.clip_by_value(y_pred, EPSILON, 1.0 - EPSILON)
            cross_entropy = -(y_true * tf.math.log(p) + (1.0 - y_true) * tf.math.log(1.0 - p))
            one_minus_p_t = 1.0 - (y_true * p + (1.0 - y_true) * (1.0 - p))
        alpha_t = y_true * self.alpha + (1.0 - y_true) * (1.0 - self.alpha)
        loss = alpha_t * tf.pow(one_minus_p_t, self.gamma) * cross_entropy
        # Inside a compiled step labels cannot raise: out-of-range ones make the
        # loss NaN, which the loops report with its epoch and step.
        valid = tf.logical_and(y_true >= 0.0, y_true <= 1.0)
        loss = tf.where(valid, loss, tf.constant(float("nan"), loss.dtype))
        return tf.reduce_mean(loss, axis=-1)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(alpha=self.alpha, gamma=self.gamma, from_logits=self.from_logits)
        return config


@keras.saving.register_keras_serializable(package="tutorial_helpers")
class WeightedMeanSquaredError(keras.losses.Loss):
    """Mean squared error with one weight per output column.

    ``loss = mean_j(w_j * (y_true_j - y_pred_j)**2)`` over the last axis, for
    multi-output regression where some outputs matter more than others.  With
    every weight 1 it is exactly ``keras.losses.MeanSquaredError``.  (To weight
    *samples* instead, pass ``sample_weight``, which every Keras loss accepts.)
    """

    def __init__(
        self,
        weights: Sequence[float],
        reduction: str | None = "sum_over_batch_size",
        name: str = "weighted_mean_squared_error",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence | np.ndarray):
            raise TypeError(f"weights must be a list of numbers >= 0, got {type(weights).__name__}")
        values = [check_number(w, f"weights[{i}]", minimum=0.0) for i, w in enumerate(weights)]
        if not values:
            raise ValueError("weights must not be empty")
        if not any(values):
            raise ValueError(f"weights must not all be 0 (the loss would always be 0), got {values}")
        self.weights = values

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        y_pred = tf.convert_to_tensor(y_pred)
        y_true = tf.cast(y_true, y_pred.dtype)
        if y_pred.shape[-1] is not None and y_pred.shape[-1] != len(self.weights):
            raise ValueError(
                f"WeightedMeanSquaredError has {len(self.weights)} weights but the "
                f"predictions have {y_pred.shape[-1]} outputs"
            )
        weights = tf.constant(self.weights, dtype=y_pred.dtype)
        return tf.reduce_mean(weights * tf.square(y_true - y_pred), axis=-1)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(weights=list(self.weights))
        return config
