"""Chapter 8: early stopping with patience, keeping the best weights in memory."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from tutorial_helpers.validation import check_non_negative_number, check_positive_int


class EarlyStopper:
    """Decide when to stop, and remember the weights of the best epoch.

    Call :meth:`update` once per epoch with the monitored value and the current
    weights.  An epoch *improves* when its value beats the best so far by more
    than ``min_delta`` (lower is better with ``mode="min"``); a NaN never
    improves.  After ``patience`` epochs without improvement, ``update``
    returns ``True``.  ``best_weights`` is a copy kept in memory (nothing is
    written to disk).  :meth:`reset` forgets everything, so one stopper can
    serve several runs; ``Trainer.fit`` calls it when a run starts fresh.

    This is ``keras.callbacks.EarlyStopping(restore_best_weights=True)`` written
    out, for a loop that is not ``fit()``.
    """

    def __init__(
        self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0, mode: str = "min"
    ) -> None:
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor must be the name of a logged value such as 'val_loss', got {monitor!r}")
        self.monitor = monitor
        self.patience = check_positive_int(patience, "patience")
        self.min_delta = check_non_negative_number(min_delta, "min_delta")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.mode = mode
        self.reset()

    def reset(self) -> None:
        """Forget the best value, its weights and the waiting count: a new run begins."""
        self.best: float = math.inf if self.mode == "min" else -math.inf
        self.best_epoch: int | None = None
        self.best_weights: list[np.ndarray] | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None

    def _improves(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, epoch: int, logs: dict[str, float], weights: list[np.ndarray]) -> bool:
        """Record epoch ``epoch`` (0-based); return ``True`` if training should stop now."""
        if self.monitor not in logs:
            raise KeyError(
                f"early stopping monitors {self.monitor!r}, but the logs only have {sorted(logs)}"
            )
        value = float(logs[self.monitor])
        if self._improves(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            self.best_weights = [np.array(w, copy=True) for w in weights]
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def restore_best(self, model) -> int:
        """Put the best epoch's weights back into ``model``; return that epoch (0-based).

        Raises ``FloatingPointError`` if no epoch ever improved (the monitored
        value was NaN from the start): there are no weights worth restoring.
        """
        if self.best_weights is None or self.best_epoch is None:
            raise FloatingPointError(
                f"early stopping monitored {self.monitor!r}, which never had a finite value that "
                "improved: no weights to restore (is the metric NaN from the first epoch?)"
            )
        model.set_weights(self.best_weights)
        return self.best_epoch


class StopperState(tf.Module):
    """An :class:`EarlyStopper`'s state as variables, so a ``tf.train.Checkpoint`` can hold it.

    ``weights`` gives the shapes of the weights to keep (the model's
    ``get_weights()``).  :meth:`save_from` copies a stopper into the variables
    before a checkpoint is written; :meth:`load_into` copies them back after
    one is restored, so a resumed run stops exactly where an uninterrupted one would.
    """

    def __init__(self, weights: list[np.ndarray]) -> None:
        super().__init__(name="early_stopper")
        self.best = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self.best_epoch = tf.Variable(-1, dtype=tf.int64, trainable=False)  # -1: none yet
        self.wait = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.stopped_epoch = tf.Variable(-1, dtype=tf.int64, trainable=False)
        self.best_weights = [tf.Variable(np.zeros_like(w), trainable=False) for w in weights]

    def save_from(self, stopper: EarlyStopper) -> None:
        self.best.assign(stopper.best)
        self.best_epoch.assign(-1 if stopper.best_epoch is None else stopper.best_epoch)
        self.wait.assign(stopper.wait)
        self.stopped_epoch.assign(-1 if stopper.stopped_epoch is None else stopper.stopped_epoch)
        if stopper.best_weights is not None:
            for variable, value in zip(self.best_weights, stopper.best_weights, strict=True):
                variable.assign(value)

    def load_into(self, stopper: EarlyStopper) -> None:
        stopper.reset()
        best_epoch, stopped = int(self.best_epoch.numpy()), int(self.stopped_epoch.numpy())
        stopper.wait = int(self.wait.numpy())
        stopper.stopped_epoch = None if stopped < 0 else stopped
        if best_epoch >= 0:
            stopper.best, stopper.best_epoch = float(self.best.numpy()), best_epoch
            stopper.best_weights = [v.numpy() for v in self.best_weights]
