"""Synthetic data sets made from code, so the book never downloads anything."""

from __future__ import annotations

import numpy as np

from tutorial_helpers.validation import (
    check_non_negative_int,
    check_non_negative_number,
    check_number,
    check_positive_int,
)

TRUE_W = 3.0
TRUE_B = 2.0
#: Coefficients and intercept of the three-feature regression of Chapter 2.
REGRESSION_COEFS = (3.0, 2.0, -1.0)
REGRESSION_INTERCEPT = 0.5


def make_line_data(
    n: int = 201,
    w: float = TRUE_W,
    b: float = TRUE_B,
    noise: float = 1.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Points on the line ``y = w * x + b`` with Gaussian noise.

    ``x`` is evenly spaced on ``[-2, 2]``; returns ``(x, y)`` as ``float32``
    vectors of length ``n``.  The noise comes from its own generator, so the
    data do not depend on what else the notebook has drawn.
    """
    n = check_positive_int(n, "n")
    w, b = check_number(w, "w"), check_number(b, "b")
    noise = check_non_negative_number(noise, "noise")
    rng = np.random.default_rng(check_non_negative_int(seed, "seed"))
    x = np.linspace(-2.0, 2.0, n, dtype=np.float32)
    y = (w * x + b + noise * rng.standard_normal(n)).astype(np.float32)
    return x, y


def regression_target(x: np.ndarray) -> np.ndarray:
    """The noise-free target of Chapter 2: ``3*x0 + 2*x1 - x2 + 0.5``, shape ``(n, 1)``."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != len(REGRESSION_COEFS):
        raise ValueError(f"x must have shape (n, {len(REGRESSION_COEFS)}), got {x.shape}")
    coefs = np.asarray(REGRESSION_COEFS, dtype=np.float32)
    return (x @ coefs + REGRESSION_INTERCEPT).astype(np.float32)[:, None]


def make_regression_data(
    n: int = 1000, noise: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Features uniform on ``[0, 1)^3`` and ``y = 3*x0 + 2*x1 - x2 + 0.5 + noise``.

    ``y`` has shape ``(n, 1)``, matching a ``Dense(1)`` output: a ``(n,)``
    target would silently broadcast against ``(n, 1)`` predictions.
    """
    n = check_positive_int(n, "n")
    noise = check_non_negative_number(noise, "noise")
    rng = np.random.default_rng(check_non_negative_int(seed, "seed"))
    x = rng.random((n, len(REGRESSION_COEFS)), dtype=np.float32)
    y = regression_target(x) + (noise * rng.standard_normal((n, 1))).astype(np.float32)
    return x, y


def train_val_split(
    x: np.ndarray, y: np.ndarray, val_fraction: float = 0.2, seed: int = 0
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Shuffle once with ``seed`` and split into ``(x_train, y_train), (x_val, y_val)``."""
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    check_number(val_fraction, "val_fraction", minimum=0.0, maximum=1.0,
                 exclusive_minimum=True, exclusive_maximum=True)
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = max(1, round(len(x) * val_fraction))
    val, train = order[:n_val], order[n_val:]
    if len(train) == 0:
        raise ValueError("val_fraction leaves no training samples")
    return (x[train], y[train]), (x[val], y[val])


def load_digit_images(low: float = -1.0, high: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 handwritten digits that scikit-learn ships (no download), as images.

    Returns ``(images, labels)``: images of shape ``(1797, 8, 8, 1)``, ``float32``,
    scaled from the original 0..16 grey levels to ``[low, high]`` (default
    ``[-1, 1]``, the range of a ``tanh`` generator), and integer labels 0..9.
    """
    from sklearn.datasets import load_digits

    low, high = check_number(low, "low"), check_number(high, "high")
    if not low < high:
        raise ValueError(f"low must be < high, got {low} and {high}")
    digits = load_digits()
    images = digits.images.astype(np.float32) / 16.0 * (high - low) + low
    return images[..., None], digits.target.astype(np.int64)
