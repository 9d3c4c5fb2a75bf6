"""The timing helpers subtract set-up cost, exclude warm-up, and take medians.

The helpers read ``time.perf_counter``; these tests give them a fake clock that
moves only when the code under test "works", so every expected time is exact
and no test depends on how busy the machine is.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers import timing
from tutorial_helpers.timing import race, seconds_per_epoch, wait_for_device


class FakeClock:
    """``perf_counter`` that reads ``now``; ``sleep`` moves it on."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


CLOCK = FakeClock()
time = CLOCK  # what the code below "sleeps" on


@pytest.fixture(autouse=True)
def fake_clock(monkeypatch):
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=CLOCK.perf_counter))
    return CLOCK


class QueuedModel:
    """Stands in for a model on a GPU: its weights take ``pending`` seconds to be ready."""

    def __init__(self, name: str, pending: float = 0.0) -> None:
        self.name, self.pending = name, pending
        self.variables = [tf.Variable([1.5, 2.0]), tf.Variable([[0.25]])]

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        time.sleep(self.pending)  # the device finishing the work queued before the read
        return self.variables


def test_setup_cost_cancels() -> None:
    def run(n: int) -> int:
        time.sleep(0.05)  # one-off set-up
        time.sleep(0.01 * n)  # 10 ms per epoch
        return n

    seconds, result = seconds_per_epoch(run, epochs=4)
    assert result == 5
    assert seconds == pytest.approx(0.01, rel=1e-9)  # the 50 ms set-up cancels exactly


def test_race_excludes_the_warm_up_and_takes_turns() -> None:
    calls: list[tuple[str, int]] = []

    def rung(name: str, first: float, per_epoch: float):
        def factory():
            state = {"warm": False}

            def run(n: int) -> None:
                calls.append((name, n))
                if not state["warm"]:
                    time.sleep(first)  # like tracing: only the first call pays
                    state["warm"] = True
                time.sleep(per_epoch * n)

            return QueuedModel(name), run

        return factory

    times, models = race({"slow": rung("slow", 0.0, 0.01), "traced": rung("traced", 0.1, 0.001)},
                         {"slow": 3, "traced": 3}, repeats=2)
    assert times["slow"] == pytest.approx(0.01, rel=1e-9)
    assert times["traced"] == pytest.approx(0.001, rel=1e-9)  # the 100 ms warm-up is not counted
    assert {name: model.name for name, model in models.items()} == {"slow": "slow", "traced": "traced"}
    assert calls == [("slow", 1), ("slow", 3), ("traced", 1), ("traced", 3)] * 2


def test_race_waits_for_the_device_inside_the_timed_region() -> None:
    # run() only queues work (returns at once); the device needs 60 ms to finish it
    times, _ = race({"async": lambda: (QueuedModel("async", pending=0.06), lambda n: None)},
                    {"async": 3}, repeats=1)
    assert times["async"] == pytest.approx(0.02, rel=1e-9)  # 60 ms over 3 epochs, not 0


def test_wait_for_device_reads_every_weight() -> None:
    model = QueuedModel("m")
    assert wait_for_device(model) == pytest.approx(np.sum([1.5, 2.0, 0.25]))
    model.variables = []
    with pytest.raises(ValueError, match="no trainable variables"):
        wait_for_device(model)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="epochs"):
        seconds_per_epoch(lambda n: None, epochs=0)
    with pytest.raises(ValueError, match="repeats"):
        race({}, {}, repeats=0)
    with pytest.raises(ValueError, match="epochs"):
        race({"a": lambda: (None, lambda n: None)}, {"a": 0})
