"""Chapter 4: a stateful Keras metric of your own, the way a custom loop needs it.

A ``keras.metrics.Metric`` keeps *state* across batches (``update_state``),
turns it into a number on demand (``result``) and forgets it between epochs
(``reset_state``).  That is what makes a metric such as F1 correct over an
epoch: averaging per-batch F1 scores is not the F1 of the epoch, but summing
true positives, false positives and false negatives over the batches and
computing F1 once at the end is.  :class:`BinaryF1` is that metric, with
sample weights, and gives scikit-learn's ``f1_score`` (the tests check it).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tutorial_helpers.validation import check_bool, check_number


@keras.saving.register_keras_serializable(package="tutorial_helpers")
class BinaryF1(keras.metrics.Metric):
    """F1 score of a binary classifier, accumulated over batches, with sample weights.

    ``y_true`` holds 0/1 labels; ``y_pred`` holds probabilities (or logits with
    ``from_logits=True``), of the same number of elements.  A prediction is
    positive when the probability is above ``threshold``.  With weights ``w``,
    ``F1 = 2 TP / (2 TP + FP + FN)`` where ``TP = sum(w * true * predicted)``
    and so on, as ``sklearn.metrics.f1_score(..., sample_weight=w)``; when
    there are no positives at all, the result is 0 (scikit-learn's
    ``zero_division`` default).
    """

    def __init__(
        self, threshold: float = 0.5, from_logits: bool = False, name: str = "f1", **kwargs
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.threshold = check_number(
            threshold, "threshold", minimum=0.0, maximum=1.0, exclusive_minimum=True, exclusive_maximum=True
        )
        self.from_logits = check_bool(from_logits, "from_logits")
        self.true_positives = self.add_variable((), initializer="zeros", name="true_positives")
        self.false_positives = self.add_variable((), initializer="zeros", name="false_positives")
        self.false_negatives = self.add_variable((), initializer="zeros", name="false_negatives")

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Add one batch's weighted true positives, false positives and false negatives."""
        y_true = tf.reshape(tf.cast(y_true, self.dtype), [-1])
        y_pred = tf.reshape(tf.cast(y_pred, self.dtype), [-1])
        if self.from_logits:
            y_pred = tf.sigmoid(y_pred)
        predicted = tf.cast(y_pred > self.threshold, self.dtype)
        weight = tf.ones_like(y_true) if sample_weight is None else tf.reshape(
            tf.cast(sample_weight, self.dtype), [-1]
        )
        weight = tf.broadcast_to(weight, tf.shape(y_true))  # a scalar weight weighs every sample
        self.true_positives.assign_add(tf.reduce_sum(weight * y_true * predicted))
        self.false_positives.assign_add(tf.reduce_sum(weight * (1.0 - y_true) * predicted))
        self.false_negatives.assign_add(tf.reduce_sum(weight * y_true * (1.0 - predicted)))

    def result(self) -> tf.Tensor:
        """``2 TP / (2 TP + FP + FN)`` of everything seen since the last reset (0 if undefined)."""
        denominator = 2.0 * self.true_positives + self.false_positives + self.false_negatives
        return tf.math.divide_no_nan(2.0 * self.true_positives, denominator)

    def reset_state(self) -> None:
        """Forget all batches: called by ``fit()`` (and the book's loops) at each epoch start."""
        for variable in self.variables:
            variable.assign(tf.zeros_like(variable))

    def get_config(self) -> dict:
        return {**super().get_config(), "threshold": self.threshold, "from_logits": self.from_logits}
