"""max_weight_difference: the measure behind every equivalence claim in the book."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tutorial_helpers.compare import max_weight_difference


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
    assert np.isfinite(max_weight_difference(a, dense()))


def test_different_architectures_are_rejected() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        max_weight_difference(dense(2), dense(3))


def test_unbuilt_models_are_rejected() -> None:
    with pytest.raises(ValueError, match="no weights"):
        max_weight_difference(keras.Sequential([]), keras.Sequential([]))
