"""Comparing two trained models: the book's test of "this loop equals that one"."""

from __future__ import annotations

import keras
import numpy as np

from tutorial_helpers.validation import check_non_negative_number


def max_weight_difference(a: keras.Model, b: keras.Model) -> float:
    """Largest absolute difference between corresponding weights of two models.

    Raises ``ValueError`` if the models do not have the same weight shapes.
    ``0.0`` means the two models are bit for bit identical.
    """
    weights_a, weights_b = a.get_weights(), b.get_weights()
    shapes_a = [w.shape for w in weights_a]
    shapes_b = [w.shape for w in weights_b]
    if shapes_a != shapes_b:
        raise ValueError(f"the models' weights differ in shape: {shapes_a} vs {shapes_b}")
    if not weights_a:
        raise ValueError("the models have no weights (are they built?)")
    return max(float(np.max(np.abs(u - v))) for u, v in zip(weights_a, weights_b, strict=True))


FLOAT32_ROUNDING = 1e-6


def format_difference(difference: float) -> str:
    """Say how large a weight difference is in words that hold on every machine.

    ``0.0`` is ``"0 (bit for bit)"``.  A difference below ``1e-6`` is float32
    rounding, whose last digits depend on the CPU's instruction set and thread
    count, so it prints as ``"< 1e-06 (float32 rounding)"``, never as digits
    that another machine would print differently.  Anything larger is a real
    difference and prints in scientific notation, e.g. ``"3.1e-01"``.
    """
    difference = check_non_negative_number(difference, "difference")
    if difference == 0.0:
        return "0 (bit for bit)"
    if difference < FLOAT32_ROUNDING:
        return f"< {FLOAT32_ROUNDING:.0e} (float32 rounding)"
    return f"{difference:.1e}"
