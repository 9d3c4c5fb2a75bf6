"""Checkers for Chapter 17's exercises (padded sequences, masks and retracing; kept apart so that
``check.py`` stays small)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tutorial_helpers.check import _number, _run, _WrongResult, _yours


def masked_accuracy(your_fn: Callable) -> bool:
    """Chapter 17: ``your_fn(y_true, logits, mask)`` is the accuracy over the real positions only.

    ``y_true`` is ``[batch, length]`` int32, ``logits`` ``[batch, length,
    classes]``, ``mask`` ``[batch, length]`` bool; a position is right where
    ``argmax(logits) == y_true``.  One row is all padding.  A tensor or a
    Python float are both fine.
    """

    def body() -> str | None:
        rng = np.random.default_rng(17)
        lengths = np.array([7, 3, 0, 5, 1, 7])  # a fully padded row
        mask = np.arange(7) < lengths[:, None]
        y = np.where(mask, rng.integers(0, 3, mask.shape), 0).astype(np.int32)
        logits = rng.normal(size=(*mask.shape, 3)).astype(np.float32)
        right = np.argmax(logits, axis=-1) == y
        expected, everywhere = float(right[mask].mean()), float(right.mean())
        got = _number(_yours(your_fn, tf.constant(y), tf.constant(logits), tf.constant(mask)))
        if np.isnan(got):
            return ("got NaN: the fully padded row has no real position; sum the right answers over "
                    "all real positions and divide once (tf.math.divide_no_nan)")
        if np.isclose(got, everywhere, atol=1e-6):
            return (f"got {got:.4f}, the accuracy over all positions (padding counted); "
                    f"over the real ones it is {expected:.4f}")
        if not np.isclose(got, expected, atol=1e-6):
            return f"got {got:.4f}, expected {expected:.4f} over the {int(mask.sum())} real positions"
        return None

    return _run("masked_accuracy", body)


def _padding(lengths: Sequence[int], batch_size: int) -> int:
    """The padded positions of ``padded_batch(batch_size)`` over sequences of ``lengths``, in this order."""
    chunks = [lengths[i : i + batch_size] for i in range(0, len(lengths), batch_size)]
    return sum(len(chunk) * max(chunk) - sum(chunk) for chunk in chunks)


def bucketed(dataset: Any, sequences: Sequence[Any], labels: Sequence[Any], batch_size: int) -> bool:
    """Chapter 17: ``dataset`` batches ``(sequences[i], labels[i])`` with less padding than ``padded_batch``.

    Each element of ``dataset`` is ``(x, y)``, both ``[batch, length]`` and
    padded with 0 (tokens are >= 1).  After stripping the padding, every
    pair must appear exactly once, no batch may hold more than
    ``batch_size`` pairs, and the batches must hold fewer padded positions
    than ``padded_batch(batch_size)`` over the data in the given order
    (``bucket_by_sequence_length`` does it by grouping similar lengths).
    """

    def body() -> str | None:
        if not isinstance(dataset, tf.data.Dataset):
            raise _WrongResult(f"dataset is a {type(dataset).__name__}, not a tf.data.Dataset")
        if len(sequences) != len(labels):
            raise _WrongResult(f"{len(sequences)} sequences but {len(labels)} labels: one labels array each")
        pairs = [(tuple(np.asarray(s).tolist()), tuple(np.asarray(t).tolist()))
                 for s, t in zip(sequences, labels, strict=True)]
        if any(len(s) != len(t) or 0 in s for s, t in pairs):
            raise _WrongResult("each sequence needs labels of its length, and tokens >= 1 (0 is the padding)")
        seen: Counter = Counter()
        padding = 0
        for element in dataset.as_numpy_iterator():
            if not (isinstance(element, tuple) and len(element) == 2):
                raise _WrongResult(f"each element must be a pair (x, y), got {type(element).__name__}")
            x, y = (np.asarray(part) for part in element)
            if x.ndim != 2 or y.shape != x.shape:
                return f"a batch has x of shape {x.shape}, y of shape {y.shape}: both [batch, length]"
            if len(x) > batch_size:
                return f"a batch holds {len(x)} sequences, more than batch_size={batch_size}"
            real = x != 0
            padding += int(x.size - real.sum())
            seen.update((tuple(row[keep].tolist()), tuple(lab[keep].tolist())) for row, lab, keep in
                        zip(x, y, real, strict=True))
        expected = Counter(pairs)
        if seen != expected:
            lost, extra = sum((expected - seen).values()), sum((seen - expected).values())
            return (f"{lost} (sequence, labels) pairs are missing and {extra} are extra or repeated "
                    "(drop_remainder loses the last batch; labels must move with their sequence)")
        plain = _padding([len(s) for s, _ in pairs], batch_size)
        if padding >= plain:
            return (f"your batches hold {padding} padded positions, a plain padded_batch({batch_size}) "
                    f"holds {plain}: group sequences of similar length (bucket_by_sequence_length)")
        return None

    return _run("bucketed", body)


def traces_once(step: Callable) -> bool:
    """Chapter 17: ``step(x, y)``, a ``tf.function``, traces once for batches of padded lengths 5, 9 and 13.

    ``x`` holds int32 tokens in 1..20 and ``y`` int32 labels 0 or 1, both
    ``[4, length]``.  Calls that find the step already traced for such
    batches add no trace, and that is fine too.
    """

    def body() -> str | None:
        if not hasattr(step, "experimental_get_tracing_count"):
            return "step is not a tf.function: decorate it with @tf.function"
        rng = np.random.default_rng(9)
        before = step.experimental_get_tracing_count()
        for length in (5, 9, 13):
            x = rng.integers(1, 21, (4, length)).astype(np.int32)
            _yours(step, tf.constant(x), tf.constant(rng.integers(0, 2, (4, length)).astype(np.int32)))
        traces = step.experimental_get_tracing_count() - before
        if traces > 1:
            return (f"traced {traces} times: give tf.function an input_signature with None for the length "
                    "(and build the optimizer before the first call: a step that creates variables is "
                    "traced twice)")
        return None

    return _run("traces_once", body)
