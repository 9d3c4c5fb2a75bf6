"""max_weight_difference: the measure behind every equivalence claim in the book."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tutorial_helpers.compare import format_difference, max_weight_difference


def dense(units: int = 2) -> keras.Model:
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])


def test_identical_models_differ_by_zero_and_a_change_is_measured() -> None:
    a, b = dense(), dense()
    b.set_weights(a.get_weights())
    assert max_weight_difference(a, b) == 0.0
    kernel, bias = b.get_weights()
    kernel[1, 0] += 0.25
    b.set_weights([kernel, bias])
    assert max_weight_difference(a, b) == pytest.approx(0.25)
    assert max_weight_difference(b, a) == pytest.approx(0.25)
    other = dense()
    expected = max(np.max(np.abs(u - v)) for u, v in zip(a.get_weights(), other.get_weights(), strict=True))
    assert max_weight_difference(a, other) == expected  # the largest |difference| over every weight


def test_different_architectures_are_rejected() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        max_weight_difference(dense(2), dense(3))


def test_unbuilt_models_are_rejected() -> None:
    with pytest.raises(ValueError, match="no weights"):
        max_weight_difference(keras.Sequential([]), keras.Sequential([]))


def test_format_difference_prints_no_machine_dependent_digits() -> None:
    assert format_difference(0.0) == "0 (bit for bit)"
    # float32 rounding, whatever its last digits on this machine
    for tiny in (6.0e-8, 1.2e-7, np.float32(2.4e-7), 9.99e-7):
        assert format_difference(tiny) == "< 1e-06 (float32 rounding)"
    assert format_difference(1e-6) == "1.0e-06"
    assert format_difference(0.3081) == "3.1e-01"


@pytest.mark.parametrize("bad", [-1e-7, float("nan"), float("inf")])
def test_format_difference_rejects_impossible_differences(bad: float) -> None:
    with pytest.raises(ValueError, match="difference must be a finite number >= 0"):
        format_difference(bad)


def test_format_difference_rejects_non_numbers() -> None:
    with pytest.raises(TypeError, match="difference must be a number, got str"):
        format_difference("1e-7")  # type: ignore[arg-type]
