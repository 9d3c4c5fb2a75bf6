"""Chapter 7: early stopping with patience, keeping the best weights in memory."""

from __future__ import annotations

import math

import numpy as np

from tutorial_helpers.validation import check_positive_int


class EarlyStopper:
    """Decide when to stop, and remember the weights of the best epoch.

    Call :meth:`update` once per epoch with the monitored value and the current
    weights.  An epoch *improves* when its value beats the best so far by more
    than ``min_delta`` (lower is better with ``mode="min"``).  After
    ``patience`` epochs without improvement, ``update`` returns ``True``.
    ``best_weights`` is a copy kept in memory (nothing is written to disk).
    """

    def __init__(
        self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0, mode: str = "min"
    ) -> None:
        self.monitor = monitor
        self.patience = check_positive_int(patience, "patience")
        if min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {min_delta}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.min_delta = float(min_delta)
        self.mode = mode
        self.best: float = math.inf if mode == "min" else -math.inf
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
