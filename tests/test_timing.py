"""The timing helpers subtract set-up cost and take medians."""

from __future__ import annotations

import time

import pytest

from tutorial_helpers.timing import race, seconds_per_epoch


def test_setup_cost_cancels() -> None:
    def run(n: int) -> int:
        time.sleep(0.05)  # one-off set-up
        time.sleep(0.01 * n)  # 10 ms per epoch
        return n

    seconds, result = seconds_per_epoch(run, epochs=4)
    assert result == 5
    assert seconds == pytest.approx(0.01, abs=0.006)


def test_race_returns_medians_and_results() -> None:
    calls: list[str] = []

    def make(name: str, per_epoch: float):
        def run(n: int) -> str:
            calls.append(name)
            time.sleep(per_epoch * n)
            return name

        return run

    times, results = race({"slow": make("slow", 0.01), "fast": make("fast", 0.001)},
                          {"slow": 2, "fast": 2}, repeats=2)
    assert times["slow"] > times["fast"]
    assert results == {"slow": "slow", "fast": "fast"}
    assert calls == ["slow", "slow", "fast", "fast"] * 2  # in turn within each repeat


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="epochs"):
        seconds_per_epoch(lambda n: None, epochs=0)
    with pytest.raises(ValueError, match="repeats"):
        race({}, {}, repeats=0)
