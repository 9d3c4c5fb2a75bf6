"""Chapter 7: small Keras callbacks that work with ``fit()`` and with the custom trainer alike."""

from __future__ import annotations

import time

import keras


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
