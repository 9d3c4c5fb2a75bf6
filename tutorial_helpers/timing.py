"""Chapter 9: timing training loops fairly."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

from tutorial_helpers.validation import check_positive_int


def seconds_per_epoch(run: Callable[[int], Any], epochs: int) -> tuple[float, Any]:
    """Steady-state seconds per epoch of ``run(n_epochs)``, and what the longer run returned.

    Times ``run(epochs + 1)`` and ``run(1)`` and divides the difference by
    ``epochs``: tracing, building and other one-off costs, paid by both calls,
    cancel out.
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
    runs: Mapping[str, Callable[[int], Any]], epochs: Mapping[str, int], repeats: int = 3
) -> tuple[dict[str, float], dict[str, Any]]:
    """Time every run ``repeats`` times, in turn, and return the median seconds per epoch of each.

    Taking the runs in turn within each repeat means a machine that gets busier
    or quieter affects all of them alike.  Also returns what each run returned
    (from its last repeat), e.g. the trained model, to check they all agree.
    """
    repeats = check_positive_int(repeats, "repeats")
    samples: dict[str, list[float]] = {name: [] for name in runs}
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            seconds, results[name] = seconds_per_epoch(run, epochs[name])
            samples[name].append(seconds)
    return {name: statistics.median(values) for name, values in samples.items()}, results
