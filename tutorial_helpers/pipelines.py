"""Chapter 13: ``tf.data`` input pipelines for a custom loop, and seeing whether the loop waits.

A training step can only run as fast as its batches arrive.  When reading or
decoding a sample costs time (a file on disk, a JPEG to decode), a pipeline
that reads one sample after another, and only when the loop asks, leaves the
loop waiting.  The cures are the standard ``tf.data`` ones: read in parallel
(``map(..., num_parallel_calls=tf.data.AUTOTUNE)``), keep what was read
(``cache()``) and prepare the next batches while the current one trains
(``prefetch``).

* :func:`slow_read` imitates a costly read (``latency`` seconds per sample, as
  TensorFlow's own ``tf.data`` performance guide does with ``time.sleep``);
* :func:`naive_pipeline` and :func:`tuned_pipeline` build the two pipelines;
* :func:`time_input` runs a training step over a dataset and splits the wall
  time into *waiting for the next batch* and *running the step*.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from tutorial_helpers.validation import (
    as_float_array,
    check_bool,
    check_non_negative_number,
    check_positive_int,
    check_same_length,
)

Read = Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]


def slow_read(latency: float) -> Read:
    """A ``map`` function that returns each ``(x, y)`` unchanged after ``latency`` seconds.

    The wait runs in Python (``tf.py_function`` and ``time.sleep``), which
    releases the interpreter lock, so parallel calls overlap like real reads.
    The shapes and dtypes of ``x`` and ``y`` are kept, so a model can be built
    from the dataset's ``element_spec``.
    """
    latency = check_non_negative_number(latency, "latency")

    def wait(x: tf.Tensor) -> tf.Tensor:
        time.sleep(latency)
        return x

    def read(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x_read = tf.py_function(wait, [x], x.dtype)
        x_read.set_shape(x.shape)  # py_function forgets the shape
        return x_read, y

    return read


def _slices(x: Any, y: Any, batch_size: int) -> tf.data.Dataset:
    x = as_float_array(x, "x")
    y = as_float_array(y, "y")
    check_same_length(x, y)
    check_positive_int(batch_size, "batch_size")
    return tf.data.Dataset.from_tensor_slices((x, y))


def naive_pipeline(x: Any, y: Any, batch_size: int, latency: float) -> tf.data.Dataset:
    """Read every sample one after another, when the loop asks for the batch: ``map`` then ``batch``."""
    return _slices(x, y, batch_size).map(slow_read(latency)).batch(batch_size)


def tuned_pipeline(
    x: Any,
    y: Any,
    batch_size: int,
    latency: float,
    *,
    shuffle_seed: int | None = None,
    parallel_reads: int = tf.data.AUTOTUNE,
    cache: bool = True,
) -> tf.data.Dataset:
    """Read in parallel, cache, reshuffle each epoch (with ``shuffle_seed``), batch, prefetch.

    ``cache=False`` leaves out the cache (every epoch reads again, in parallel).

    The order of the steps matters: ``cache()`` comes after the costly read
    (so later epochs skip it) and *before* ``shuffle`` (a cache after the
    shuffle would replay the first epoch's order forever).  The shuffle buffer
    holds the whole data set, so every permutation is possible; with the same
    ``shuffle_seed`` (and global seed) a rebuilt pipeline gives the same
    sequence of epochs.  ``map(..., deterministic=True)`` keeps the samples in
    order although the reads overlap.  Under op determinism (the book's
    default), TensorFlow runs a Python read such as :func:`slow_read` one call
    at a time and without prefetching, whatever ``parallel_reads`` says: then
    only the cache saves time (Chapter 13 measures it).
    """
    if shuffle_seed is not None and (isinstance(shuffle_seed, bool) or not isinstance(shuffle_seed, int)):
        raise TypeError(f"shuffle_seed must be an int or None, got {type(shuffle_seed).__name__}")
    if parallel_reads != tf.data.AUTOTUNE:
        check_positive_int(parallel_reads, "parallel_reads")
    dataset = _slices(x, y, batch_size).map(
        slow_read(latency), num_parallel_calls=parallel_reads, deterministic=True
    )
    if check_bool(cache, "cache"):
        dataset = dataset.cache()
    if shuffle_seed is not None:
        count = int(dataset.cardinality())
        dataset = dataset.shuffle(count, seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


@dataclass(frozen=True)
class InputTiming:
    """Where the wall time of some epochs went: waiting for batches, or running steps."""

    wait_s: float
    step_s: float
    steps: int

    @property
    def total_s(self) -> float:
        return self.wait_s + self.step_s

    @property
    def wait_fraction(self) -> float:
        """The share of the time the loop sat idle, waiting for its next batch."""
        return self.wait_s / self.total_s if self.total_s > 0 else 0.0

    @property
    def ms_per_step(self) -> float:
        return 1000.0 * self.total_s / self.steps


def time_input(
    dataset: tf.data.Dataset, step: Callable[..., Any], epochs: int = 1
) -> InputTiming:
    """Run ``step(*batch)`` over ``epochs`` passes of ``dataset``, timing the two halves of each step.

    The time to get the next batch (``next(iterator)``) is *waiting*; the time
    from handing the batch to the step until its result is back on the host is
    *the step*.  A loop that waits for a good share of its time is limited by
    its input pipeline, not by its model.
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(f"dataset must be a tf.data.Dataset, got {type(dataset).__name__}")
    if not callable(step):
        raise TypeError(f"step must be callable, got {type(step).__name__}")
    epochs = check_positive_int(epochs, "epochs")
    wait = run = 0.0
    steps = 0
    for _ in range(epochs):
        iterator = iter(dataset)
        while True:
            start = time.perf_counter()
            batch = next(iterator, None)
            got = time.perf_counter()
            if batch is None:
                wait += got - start
                break
            np.asarray(step(*batch))  # wait for the step's result
            run += time.perf_counter() - got
            wait += got - start
            steps += 1
    if steps == 0:
        raise ValueError("dataset gave no batches")
    return InputTiming(wait, run, steps)
