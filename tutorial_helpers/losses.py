"""Chapter 4: custom losses as serializable ``keras.losses.Loss`` subclasses.

Both work in ``compile()`` and in the hand-written loop of ``tutorial_helpers.loops``
(``loss_fn(y_true, y_pred, sample_weight=...)``), and survive
``get_config()`` / ``from_config()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

#: Probabilities are clipped to [EPSILON, 1 - EPSILON] before taking logs, as Keras does.
EPSILON = 1e-7


def _check_unit_interval(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


@keras.saving.register_keras_serializable(package="tutorial_helpers")
class BinaryFocalLoss(keras.losses.Loss):
    """Focal loss for imbalanced binary classification (Lin et al., 2017).

    ``FL = -alpha_t * (1 - p_t)**gamma * log(p_t)``, where ``p_t`` is the
    predicted probability of the true class and ``alpha_t`` is ``alpha`` for
    positives and ``1 - alpha`` for negatives.  ``gamma`` > 0 down-weights easy,
    well-classified examples so training concentrates on the hard ones; with
    ``gamma=0`` it is ``alpha``-weighted binary cross-entropy.

    With ``from_logits=True`` (recommended) it is computed from logits without
    ever forming ``log(sigmoid(z))`` naively, so it stays exact for large
    ``|z|``; with probabilities, they are clipped to ``[1e-7, 1 - 1e-7]`` so the
    loss stays finite for predictions of exactly 0 and 1.  Like Keras's
    ``BinaryCrossentropy``, the per-sample loss is the mean over the last axis.
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
        self.alpha = _check_unit_interval(alpha, "alpha")
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)):
            raise TypeError(f"gamma must be a number, got {type(gamma).__name__}")
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)
        self.from_logits = bool(from_logits)

    def call(self, y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        y_pred = tf.convert_to_tensor(y_pred)
        y_true = tf.cast(y_true, y_pred.dtype)
        if self.from_logits:
            # z_t is the logit of the true class: p_t = sigmoid(z_t)
            z_t = tf.where(y_true > 0.5, y_pred, -y_pred)
            # -log(p_t) = softplus(-z_t) and log(1 - p_t) = log_sigmoid(-z_t): both stable
            cross_entropy = tf.nn.softplus(-z_t)
            modulating = tf.exp(self.gamma * tf.math.log_sigmoid(-z_t))
        else:
            p = tf.clip_by_value(y_pred, EPSILON, 1.0 - EPSILON)
            p_t = y_true * p + (1.0 - y_true) * (1.0 - p)
            cross_entropy = -tf.math.log(p_t)
            modulating = tf.pow(1.0 - p_t, self.gamma)
        alpha_t = y_true * self.alpha + (1.0 - y_true) * (1.0 - self.alpha)
        return tf.reduce_mean(alpha_t * modulating * cross_entropy, axis=-1)

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
        values = [float(w) for w in weights]
        if not values:
            raise ValueError("weights must not be empty")
        if any(w < 0 for w in values):
            raise ValueError(f"weights must be >= 0, got {values}")
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
