"""Chapter 4: models that customize what ``fit()`` does by overriding ``train_step``.

Two patterns, both driven by plain ``fit()`` / ``evaluate()`` so that callbacks,
progress bars, ``validation_data``, ``sample_weight`` and ``class_weight`` keep
working:

* :class:`CustomFitModel` uses the loss and metrics given to ``compile()``
  (``compute_loss``, ``optimizer.apply``, the compiled metrics);
* :class:`OwnMetricsModel` ignores ``compile()``'s loss and metrics and keeps
  its own loss function and trackers, listed in the ``metrics`` property so that
  ``fit()`` resets them every epoch.
"""

from __future__ import annotations

import keras
import tensorflow as tf


class CustomFitModel(keras.Model):
    """A ``keras.Model`` whose ``train_step``/``test_step`` are written out by hand.

    Works for subclassed and functional models alike (``CustomFitModel(inputs,
    outputs)``).  Supports ``sample_weight`` (and so ``class_weight``, which
    ``fit`` turns into sample weights before calling ``train_step``).  Trains
    exactly like a plain compiled model.
    """

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            # the compiled loss, weighted, plus the model's own losses (penalties)
            loss = self.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
            )
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._update_metrics(loss, x, y, y_pred, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        loss = self.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False
        )
        return self._update_metrics(loss, x, y, y_pred, sample_weight)

    def _update_metrics(self, loss, x, y, y_pred, sample_weight) -> dict:
        """Update the loss tracker and the compiled metrics; return their results.

        ``compute_loss`` does not update the ``"loss"`` tracker: without this,
        the history would show ``loss: 0``.  Like ``fit``, the loss is averaged
        over samples, so a partial last batch counts for what it holds.
        """
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss, sample_weight=tf.shape(x)[0])
            else:
                metric.update_state(y, y_pred, sample_weight=sample_weight)
        # compiled metrics report a dict: get_metrics_result() flattens it
        return self.get_metrics_result()


class OwnMetricsModel(keras.Model):
    """The lower-level pattern: own loss function and metrics, ``compile()`` sets only the optimizer.

    ``loss_fn`` is any Keras loss (default mean squared error).  Reports
    ``loss`` and ``mae``.  Because both trackers are listed in :attr:`metrics`,
    ``fit()`` and ``evaluate()`` reset them at the start of every epoch / run.
    """

    def __init__(self, *args, loss_fn: keras.losses.Loss | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.loss_fn = loss_fn or keras.losses.MeanSquaredError()
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.mae_metric = keras.metrics.MeanAbsoluteError(name="mae")

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.loss_tracker, self.mae_metric]

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.loss_fn(y, y_pred, sample_weight=sample_weight)
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._record(loss, x, y, y_pred, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False)
        loss = self.loss_fn(y, y_pred, sample_weight=sample_weight)
        return self._record(loss, x, y, y_pred, sample_weight)

    def _record(self, loss, x, y, y_pred, sample_weight) -> dict:
        self.loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
        self.mae_metric.update_state(y, y_pred, sample_weight=sample_weight)
        return {m.name: m.result() for m in self.metrics}
