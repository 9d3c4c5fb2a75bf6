"""The argument checks every helper relies on."""

from __future__ import annotations

import numpy as np
import pytest

from tutorial_helpers import validation as v


def test_positive_and_non_negative_ints() -> None:
    assert v.check_positive_int(3, "n") == 3
    assert v.check_non_negative_int(0, "n") == 0
    assert v.check_positive_int(np.int64(2), "n") == 2
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        v.check_positive_int(0, "n")
    with pytest.raises(ValueError, match="n must be >= 0, got -1"):
        v.check_non_negative_int(-1, "n")
    for bad in (1.0, True, "3", None):
        with pytest.raises(TypeError, match="n must be an int"):
            v.check_positive_int(bad, "n")


def test_numbers() -> None:
    assert v.check_positive_number(0.5, "rate") == 0.5
    assert v.check_non_negative_number(0, "rate") == 0.0
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="rate must be a positive number"):
            v.check_positive_number(bad, "rate")
    with pytest.raises(ValueError, match="finite number >= 0"):
        v.check_non_negative_number(-0.1, "rate")
    with pytest.raises(TypeError, match="rate must be a"):
        v.check_non_negative_number("1", "rate")


def test_arrays() -> None:
    assert v.as_float_array([1, 2], "x").dtype == np.float32
    with pytest.raises(ValueError, match="x must not be empty"):
        v.as_float_array([], "x")
    with pytest.raises(TypeError, match="x must be a numeric array"):
        v.as_float_array([True, False], "x")
    with pytest.raises(ValueError, match="same length, got 2 and 3"):
        v.check_same_length(np.zeros(2), np.zeros(3))
