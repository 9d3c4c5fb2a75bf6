"""Chapter 9: timing training loops fairly.

A GPU runs TensorFlow's operations asynchronously: a call returns as soon as
its work is queued on the device.  A timer stopped right after the call would
measure how fast Python queues work, not how fast the device does it, so every
timed region here ends with a read of a result on the host.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

from tutorial_helpers.validation import check_positive_int

#: A rung of the speed ladder: ``factory() -> (model, run)``, where ``run(k)`` trains ``k`` epochs.
Factory = Callable[[], tuple[Any, Callable[[int], Any]]]


def wait_for_device(model: Any) -> float:
    """Wait until every queued update of ``model``'s weights is done; return their sum.

    Reads, as a Python float, one number computed from every trainable
    variable: the device must finish all the work queued before it to produce
    it.  On a CPU it costs a few microseconds.
    """
    import tensorflow as tf

    variables = list(model.trainable_variables)
    if not variables:
        raise ValueError("model has no trainable variables to wait for")
    return float(tf.add_n([tf.reduce_sum(tf.cast(v, tf.float64)) for v in variables]))


def seconds_per_epoch(run: Callable[[int], Any], epochs: int) -> tuple[float, Any]:
    """Steady-state seconds per epoch of ``run(n_epochs)``, and what the longer run returned.

    For loops that trace anew on every call (``loops.train``, ``model.fit``
    with a fresh model): times ``run(epochs + 1)`` and ``run(1)`` and divides
    the difference by ``epochs``, so the one-off costs paid by both cancel.
    Needs enough epochs for the difference to stand out of the noise.  ``run``
    must end with a read on the host (``loops.train`` and ``fit`` return a
    history of Python floats, so they do).
    """
    epochs = check_positive_int(epochs, "epochs")
    start = time.perf_counter()
    result = run(epochs + 1)
    long = time.perf_counter() - start
    start = time.perf_counter()
    run(1)
    short = time.perf_counter() - start
    return max(long - short, 0.0) / epochs, result


def race(
    factories: Mapping[str, Factory], epochs: Mapping[str, int], repeats: int = 3
) -> tuple[dict[str, float], dict[str, Any]]:
    """Median seconds per epoch of every rung, after a warm-up epoch, and each rung's model.

    For every repeat and every rung, in turn: build it with ``factory()``, run
    one epoch to pay for tracing and compilation, then time ``run(epochs[name])``
    up to :func:`wait_for_device` (on a GPU, the end of the work, not of its queuing).
    Taking the rungs in turn within each repeat means a machine that gets busier
    or quieter affects all of them alike.  The models returned (from the last
    repeat) have trained ``1 + epochs[name]`` epochs.
    """
    repeats = check_positive_int(repeats, "repeats")
    samples: dict[str, list[float]] = {name: [] for name in factories}
    trained: dict[str, Any] = {}
    for _ in range(repeats):
        for name, factory in factories.items():
            n = check_positive_int(epochs[name], f"epochs[{name!r}]")
            model, run = factory()
            run(1)  # warm-up: tracing and compilation are not timed
            wait_for_device(model)
            start = time.perf_counter()
            run(n)
            wait_for_device(model)  # the device's work, not only its queuing
            samples[name].append((time.perf_counter() - start) / n)
            trained[name] = model
    return {name: statistics.median(values) for name, values in samples.items()}, trained
