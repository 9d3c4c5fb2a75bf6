"""WarmupCosineDecay against its closed form and Keras's own CosineDecay."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from tutorial_helpers.schedules import WarmupCosineDecay


def closed_form(step: int, peak: float, warmup: int, total: int, low: float) -> float:
    if step < warmup:
        return peak * step / warmup
    if step >= total:
        return low
    return low + (peak - low) * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))


@pytest.mark.parametrize("step", [0, 1, 50, 99, 100, 101, 400, 999, 1000, 1500])
def test_values_at_chosen_steps(step: int) -> None:
    schedule = WarmupCosineDecay(1e-3, warmup_steps=100, total_steps=1000, min_learning_rate=1e-5)
    expected = closed_form(step, 1e-3, 100, 1000, 1e-5)
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-5, abs=1e-10)


def test_end_points() -> None:
    schedule = WarmupCosineDecay(0.1, warmup_steps=10, total_steps=110, min_learning_rate=0.01)
    assert float(schedule(0)) == 0.0
    assert float(schedule(10)) == pytest.approx(0.1)
    assert float(schedule(110)) == pytest.approx(0.01)


def test_continuous_at_the_warmup_boundary() -> None:
    schedule = WarmupCosineDecay(0.1, warmup_steps=1000, total_steps=100_000)
    before, at, after = (float(schedule(s)) for s in (999, 1000, 1001))
    assert abs(at - before) < 0.1 / 1000 * 1.01 and abs(after - at) < 1e-6
    assert at == pytest.approx(0.1)


def test_no_warmup_starts_at_peak_and_never_divides_by_zero() -> None:
    schedule = WarmupCosineDecay(0.1, warmup_steps=0, total_steps=50)
    values = np.array([float(schedule(s)) for s in range(60)])
    assert np.all(np.isfinite(values))
    assert values[0] == pytest.approx(0.1) and values[50] == pytest.approx(0.0, abs=1e-9)
    assert np.all(np.diff(values) <= 1e-9)


def test_warmup_filling_the_whole_schedule() -> None:
    schedule = WarmupCosineDecay(0.1, warmup_steps=20, total_steps=20, min_learning_rate=0.001)
    values = [float(schedule(s)) for s in (0, 10, 19, 20, 25)]
    assert all(np.isfinite(values))
    assert values[:3] == pytest.approx([0.0, 0.05, 0.095])
    assert values[3:] == pytest.approx([0.001, 0.001])


def test_matches_keras_cosine_decay_with_warmup() -> None:
    ours = WarmupCosineDecay(2e-3, warmup_steps=30, total_steps=200, min_learning_rate=2e-4)
    keras_schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=170, alpha=0.1, warmup_target=2e-3, warmup_steps=30
    )
    steps = np.arange(0, 260)
    np.testing.assert_allclose(
        [float(ours(s)) for s in steps], [float(keras_schedule(s)) for s in steps], rtol=1e-5, atol=1e-9
    )


def test_accepts_the_optimizers_int64_step_and_drives_an_optimizer() -> None:
    schedule = WarmupCosineDecay(0.1, warmup_steps=4, total_steps=10)
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    variable = keras.Variable(1.0)
    seen = []
    for _ in range(6):
        seen.append(float(optimizer.learning_rate))
        optimizer.apply([keras.ops.convert_to_tensor(1.0)], [variable])
    assert seen == pytest.approx([0.0, 0.025, 0.05, 0.075, 0.1, float(schedule(5))])


def test_config_round_trip() -> None:
    schedule = WarmupCosineDecay(0.05, warmup_steps=7, total_steps=70, min_learning_rate=0.001)
    clone = WarmupCosineDecay.from_config(schedule.get_config())
    assert [float(clone(s)) for s in range(0, 80, 7)] == [float(schedule(s)) for s in range(0, 80, 7)]
    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    restored = keras.optimizers.Adam.from_config(optimizer.get_config())
    assert isinstance(restored._learning_rate, WarmupCosineDecay)
    assert restored._learning_rate.get_config() == schedule.get_config()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"warmup_steps": -1}, ValueError, "warmup_steps must be >= 0"),
        ({"total_steps": -5}, ValueError, "total_steps must be >= 0"),
        ({"total_steps": 0, "warmup_steps": 0}, ValueError, "total_steps must be >= 1"),
        ({"warmup_steps": 200}, ValueError, r"warmup_steps \(200\) must not exceed total_steps \(100\)"),
        ({"peak_learning_rate": -0.1}, ValueError, "peak_learning_rate"),
        ({"min_learning_rate": 1.0}, ValueError, "must not exceed peak_learning_rate"),
        ({"warmup_steps": 1.5}, TypeError, "warmup_steps must be an int"),
        ({"peak_learning_rate": "0.1"}, TypeError, "peak_learning_rate must be a number"),
    ],
)
def test_invalid_arguments_raise_clear_errors(kwargs, error, message) -> None:
    arguments = {"peak_learning_rate": 0.1, "warmup_steps": 10, "total_steps": 100}
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        WarmupCosineDecay(**arguments)
