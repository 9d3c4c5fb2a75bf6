"""Chapter 6: a linear-warmup + cosine-decay learning-rate schedule."""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from tutorial_helpers.validation import check_non_negative_int, check_non_negative_number


@keras.saving.register_keras_serializable(package="tutorial_helpers")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to ``peak_learning_rate``, then cosine decay to ``min_learning_rate``.

    With ``w = warmup_steps`` and ``d = total_steps - warmup_steps``::

        lr(step) = peak * step / w                                   for step < w
        lr(step) = min + (peak - min) * (1 + cos(pi * (step - w) / d)) / 2   for w <= step <= total
        lr(step) = min                                               for step > total

    So ``lr(0) = 0`` (or ``peak`` when ``w = 0``), ``lr(w) = peak`` (the two
    pieces meet there), and ``lr(total_steps) = min``.  When ``d = 0`` the decay
    phase is empty and the schedule drops to ``min`` after the warm-up; no
    division by zero happens for ``w = 0`` or ``d = 0``.

    Keras's ``CosineDecay(0.0, decay_steps=d, alpha=min/peak, warmup_target=peak,
    warmup_steps=w)`` computes the same curve; this class exists to show how a
    schedule is written, and to be explicit about its end points.
    """

    def __init__(
        self,
        peak_learning_rate: float,
        warmup_steps: int,
        total_steps: int,
        min_learning_rate: float = 0.0,
        name: str = "warmup_cosine_decay",
    ) -> None:
        super().__init__()
        self.peak_learning_rate = check_non_negative_number(peak_learning_rate, "peak_learning_rate")
        self.min_learning_rate = check_non_negative_number(min_learning_rate, "min_learning_rate")
        self.warmup_steps = check_non_negative_int(warmup_steps, "warmup_steps")
        self.total_steps = check_non_negative_int(total_steps, "total_steps")
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if self.warmup_steps > self.total_steps:
            raise ValueError(
                f"warmup_steps ({warmup_steps}) must not exceed total_steps ({total_steps})"
            )
        if self.min_learning_rate > self.peak_learning_rate:
            raise ValueError(
                f"min_learning_rate ({min_learning_rate}) must not exceed "
                f"peak_learning_rate ({peak_learning_rate})"
            )
        self.name = name

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        # optimizer.iterations is an int64 variable: cast before dividing
        step = tf.cast(step, tf.float32)
        peak, low = self.peak_learning_rate, self.min_learning_rate
        warmup = float(self.warmup_steps)
        decay = float(self.total_steps - self.warmup_steps)
        warmup_lr = peak * step / max(warmup, 1.0)
        progress = tf.clip_by_value((step - warmup) / max(decay, 1.0), 0.0, 1.0)
        if decay == 0:
            progress = tf.ones_like(step)  # no decay phase: straight to the minimum
        cosine_lr = low + (peak - low) * 0.5 * (1.0 + tf.cos(math.pi * progress))
        return tf.where(step < warmup, warmup_lr, cosine_lr)

    def get_config(self) -> dict:
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "min_learning_rate": self.min_learning_rate,
            "name": self.name,
        }
