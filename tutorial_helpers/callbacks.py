"""Chapter 8: small Keras callbacks that work with ``fit()`` and with the custom trainer alike,
and the checks a custom loop makes on the callbacks it is given."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import keras


def check_callbacks(callbacks: Any, name: str = "callbacks") -> Sequence[keras.callbacks.Callback]:
    """Return ``callbacks`` if it is a list or tuple of Keras callbacks, else raise ``TypeError``."""
    if isinstance(callbacks, keras.callbacks.Callback) or not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"{name} must be a list of keras.callbacks.Callback, got {callbacks!r}")
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.Callback):
            raise TypeError(f"{name} must hold keras.callbacks.Callback objects, got {callback!r}")
    return callbacks


def has_batch_hooks(callback: keras.callbacks.Callback, phase: str) -> bool:
    """Whether ``callback`` has its own batch hook of ``phase`` (``"train"`` or ``"test"``).

    Keras marks the base class's empty hooks with ``_is_default``; anything
    else (a subclass's method, an attribute set on the instance) is a hook.
    """
    names = [f"on_{phase}_batch_begin", f"on_{phase}_batch_end"]
    if phase == "train":
        names += ["on_batch_begin", "on_batch_end"]
    return any(not getattr(getattr(callback, name), "_is_default", False) for name in names)


class EpochTimer(keras.callbacks.Callback):
    """Record the wall-clock seconds of every epoch in ``self.seconds``."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


class HookRecorder(keras.callbacks.Callback):
    """Record every hook call as ``(hook name, epoch or batch index)``, to compare loops."""

    HOOKS = (
        "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
        "on_train_batch_begin", "on_train_batch_end",
        "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
    )

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int | None]] = []
        for hook in self.HOOKS:
            setattr(self, hook, self._recorder(hook))

    def _recorder(self, hook: str):
        def record(index: int | dict | None = None, logs: dict | None = None) -> None:
            self.calls.append((hook, index if isinstance(index, int) else None))

        return record
