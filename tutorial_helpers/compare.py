"""Comparing two trained models: the book's test of "this loop equals that one"."""

from __future__ import annotations

import keras
import numpy as np


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
