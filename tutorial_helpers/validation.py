"""Argument checks shared by the helpers: clear errors that name the argument."""

from __future__ import annotations

import numbers

import numpy as np


def as_float_array(value: object, name: str, *, ndim: int | None = None) -> np.ndarray:
    """Convert ``value`` to a non-empty, finite ``float32`` array or raise.

    Raises ``TypeError`` for non-numeric input (strings, objects, ``None``) and
    ``ValueError`` for empty input, NaN/inf, or the wrong number of dimensions.
    """
    if value is None:
        raise TypeError(f"{name} must be a numeric array, got None")
    array = np.asarray(value)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.number):
        raise TypeError(
            f"{name} must be a numeric array, got dtype {array.dtype} "
            f"(from {type(value).__name__})"
        )
    if array.size == 0:
        raise ValueError(f"{name} must not be empty")
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {array.shape}")
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def check_same_length(x: np.ndarray, y: np.ndarray, x_name: str = "x", y_name: str = "y") -> None:
    """Raise ``ValueError`` unless ``x`` and ``y`` have the same first dimension."""
    if len(x) != len(y):
        raise ValueError(
            f"{x_name} and {y_name} must have the same length, got {len(x)} and {len(y)}"
        )


def check_positive_number(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a real number > 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value}")
    return float(value)


def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` if it is an int >= 1, else raise."""
    return _check_int(value, name, 1)


def check_non_negative_int(value: object, name: str) -> int:
    """Return ``value`` if it is an int >= 0, else raise."""
    return _check_int(value, name, 0)


def check_non_negative_number(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number >= 0, else raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return float(value)
