"""The benchmark's own logic: its clock, its verdict, and that no rung escapes the check."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("bench_loops", ROOT / "benchmarks" / "bench_loops.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_loops"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


bench = load_benchmark()


def test_every_book_rung_has_a_fit_counterpart_and_every_counterpart_exists() -> None:
    # A renamed rung would otherwise drop out of the verdict silently (`if name in seconds`).
    toy = bench.WORKLOADS["toy"]()
    _, gan_rungs = bench.gan_workload()
    for rungs in (bench.mlp_rungs(toy), gan_rungs):
        book_rungs = [name for name in rungs if not name.startswith("fit")]
        assert book_rungs, rungs
        for name in book_rungs:
            assert bench.COUNTERPARTS[name] in rungs, name


def test_the_verdict_separates_slower_from_level_within_timing_noise() -> None:
    seconds = {
        "fit": 1.00, "fit(spe=32)": 0.50,
        "loops.train, 1 step/call": 0.80,          # faster: not reported
        "Trainer.fit": 1.02,                       # within 3%: level
        "loops.train, 32 steps/call": 0.60,        # 20% slower than fit(spe=32): slower
        "loops.train, epoch/call": 0.50,           # equal: not reported
    }
    slower, level = bench.slower_than_fit(seconds)
    assert [line.split(" (")[0] for line in slower] == ["loops.train, 32 steps/call"]
    assert [line.split(" (")[0] for line in level] == ["Trainer.fit"]


def test_the_clock_takes_the_median_steady_epoch_and_needs_three_ends() -> None:
    clock = bench.EpochClock()
    clock.stamps = [0.0, 10.0, 11.0, 13.0, 14.0]  # the first epoch (tracing) is left out
    assert clock.seconds_per_epoch() == 1.0
    clock.stamps = [0.0, 10.0]
    with pytest.raises(ValueError, match="at least 3"):
        clock.seconds_per_epoch()


def test_every_toy_rung_is_timed_through_its_real_api() -> None:
    # The helper rungs are clocked through LossWatch.check, once per epoch: if a loop
    # stopped calling it, its rung would get no stamps and this would fail.
    rungs = bench.mlp_rungs(bench.WORKLOADS["toy"]())
    seconds = bench.measure(rungs, epochs=2, repeats=1)
    assert set(seconds) == set(rungs)
    assert all(0 < s < 60 for s in seconds.values()), seconds
