"""Argument checks shared by the helpers: clear errors that name the argument."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

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
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
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
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return float(value)


def _describe(value: object) -> str:
    return f"the string {value!r}" if isinstance(value, str) else type(value).__name__


def check_number(
    value: object,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
) -> float:
    """Return ``value`` as a float if it is a finite real number in the range, else raise.

    NumPy scalars (``np.float32(0.25)``) count as numbers; ``bool``s, strings and
    ``None`` do not (``TypeError``).  NaN, infinities and values outside
    ``[minimum, maximum]`` (with open ends where asked) raise ``ValueError``
    with the range in the message.
    """
    low = "-inf" if minimum is None else f"{minimum:g}"
    high = "inf" if maximum is None else f"{maximum:g}"
    wanted = f"a number in {'(' if exclusive_minimum or minimum is None else '['}{low}, {high}" \
             f"{')' if exclusive_maximum or maximum is None else ']'}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {wanted}, got {_describe(value)}")
    number = float(value)
    too_low = minimum is not None and (number <= minimum if exclusive_minimum else number < minimum)
    too_high = maximum is not None and (number >= maximum if exclusive_maximum else number > maximum)
    if not np.isfinite(number) or too_low or too_high:
        raise ValueError(f"{name} must be {wanted}, got {value}")
    return number


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` if it is ``True`` or ``False`` (a NumPy bool too), else raise ``TypeError``.

    ``bool("no")`` is ``True``: a flag given as a string or a number is refused, not guessed.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_finite_weights(model: object, name: str = "model") -> None:
    """Raise ``ValueError`` if any of ``model``'s floating-point weights is NaN or infinite.

    Training from such weights can only give NaN again, and the loss watch
    would then blame step 1 of the data; the message says what happened instead.
    """
    import tensorflow as tf

    weights = [w for w in getattr(model, "weights", []) if np.issubdtype(np.dtype(w.dtype), np.floating)]
    finite = [tf.reduce_all(tf.math.is_finite(w)) for w in weights]
    if not weights or bool(tf.reduce_all(finite)):  # one read on the host
        return
    bad = [w.path for w, ok in zip(weights, finite, strict=True) if not bool(ok)]
    raise ValueError(
        f"{name}'s weights are not finite ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}): "
        "an earlier run diverged and left them NaN. Build the model again, or load the weights "
        "of a checkpoint saved before the divergence"
    )


def check_loss_fn(loss_fn: object, name: str = "loss_fn") -> None:
    """Raise ``TypeError`` unless ``loss_fn`` is a callable loss (a string works only in ``compile()``)."""
    if isinstance(loss_fn, str):
        raise TypeError(
            f"{name} must be a loss object such as keras.losses.MeanSquaredError(), got the string "
            f"{loss_fn!r}: names of losses work only in compile()"
        )
    if not callable(loss_fn):
        raise TypeError(
            f"{name} must be callable, like keras.losses.MeanSquaredError(), got {_describe(loss_fn)}"
        )


def check_metrics(metrics: object, name: str = "metrics") -> list:
    """Return ``metrics`` as a list of Keras metric objects with unique names other than ``"loss"``.

    A string (``"mae"``) is refused with the object to use instead: strings name
    metrics only in ``compile()``, and a hand-written loop needs objects it can
    update and reset.
    """
    import keras

    if isinstance(metrics, (str, keras.metrics.Metric)) or not isinstance(metrics, (list, tuple)):
        raise TypeError(f"{name} must be a list of keras.metrics.Metric objects, got {_describe(metrics)}")
    for metric in metrics:
        if isinstance(metric, str):
            raise TypeError(
                f"{name} must hold keras.metrics.Metric objects such as "
                f"keras.metrics.MeanAbsoluteError(), got the string {metric!r}: "
                "names of metrics work only in compile()"
            )
        if not isinstance(metric, keras.metrics.Metric):
            raise TypeError(f"{name} must hold keras.metrics.Metric objects, got {_describe(metric)}")
    names = [m.name for m in metrics]
    if len(set(names)) != len(names) or "loss" in names:
        raise ValueError(f"{name}: metric names must be unique and not 'loss', got {names}")
    return list(metrics)


def check_optimizer(optimizer: object, name: str = "optimizer") -> None:
    """Raise ``TypeError`` unless ``optimizer`` is a Keras optimizer object."""
    import keras

    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(
            f"{name} must be a keras.optimizers.Optimizer such as keras.optimizers.Adam(1e-3), "
            f"got {_describe(optimizer)}"
        )


def _is_sparse_loss(loss_fn: object) -> bool:
    label = getattr(loss_fn, "name", None) or getattr(loss_fn, "__name__", "") or type(loss_fn).__name__
    return "sparse" in str(label).lower()


def check_targets_match_outputs(
    y_shape: Sequence[int | None], output_shape: Sequence[int | None], loss_fn: object, name: str = "y"
) -> None:
    """Raise ``ValueError`` when targets and the model's outputs would broadcast instead of matching.

    ``y_shape`` and ``output_shape`` are shapes with the batch first.  They must
    be equal after the batch axis, except that a Keras loss object accepts a
    missing or extra trailing axis of size 1 (it squeezes it, as ``fit`` does),
    and a sparse loss takes class indices ``(n,)`` or ``(n, 1)`` against one
    column per class.  Anything else (``(n, 2)`` targets for one output, or
    ``(n,)`` targets with a hand-written loss) would broadcast silently.
    """
    import keras

    y_tail, out_tail = tuple(y_shape[1:]), tuple(output_shape[1:])
    if _is_sparse_loss(loss_fn):
        if y_tail in ((), (1,)):
            return
        raise ValueError(
            f"{name} has shape {tuple(y_shape)}, but a sparse loss takes class indices of shape (n,) "
            f"or (n, 1) (the model outputs {tuple(output_shape)}); "
            "use the non-sparse loss for one-hot targets"
        )
    if y_tail == out_tail:
        return
    if isinstance(loss_fn, keras.losses.Loss) and ((*y_tail, 1) == out_tail or y_tail == (*out_tail, 1)):
        return
    raise ValueError(
        f"{name} has shape {tuple(y_shape)} but the model outputs shape {tuple(output_shape)}: the loss "
        "would broadcast them against each other and train on nonsense without an error "
        "(fit() does the same); reshape the targets or change the model's outputs"
    )
