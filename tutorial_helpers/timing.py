"""Chapter 10: timing training loops fairly.

A GPU runs TensorFlow's operations asynchronously: a call returns as soon as
its work is queued on the device.  A timer stopped right after the call would
measure how fast Python queues work, not how fast the device does it, so every
timed region here ends with a read of a result on the host.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tutorial_helpers.validation import check_positive_int

#: A rung of the speed ladder: ``factory() -> (model, run)``, where ``run(k)`` trains ``k`` epochs.
Factory = Callable[[], tuple[Any, Callable[[int], Any]]]


def wait_for_device(model: Any) -> float:
    """Wait until every queued update of ``model``'s weights is done; return their sum.

    Reads, as a Python float, one number computed from every trainable
    variable: the device must finish all the work queued before it to produce
    it.  On a CPU it costs a few microseconds.
    """
    import tensorflow as tf

    variables = list(model.trainable_variables)
    if not variables:
        raise ValueError("model has no trainable variables to wait for")
    return float(tf.add_n([tf.reduce_sum(tf.cast(v, tf.float64)) for v in variables]))


@contextlib.contextmanager
def count_host_reads() -> Iterator[dict[str, int]]:
    """Count, inside the ``with`` block, the tensor values copied to Python on the host.

    Counted: ``float(t)``, ``int(t)``, ``bool(t)``, ``t.numpy()`` (on tensors
    and variables) - all of which go through one TensorFlow method,
    ``_EagerTensorBase._numpy`` - and ``np.array(t)`` / ``np.asarray(t)``,
    which read a tensor's buffer directly (Keras's ``convert_to_numpy`` does).
    Reads made while a function is being traced are not counted: they happen
    once per trace, not once per step::

        with timing.count_host_reads() as reads:
            loops.train(...)
        print(reads["count"])

    On a GPU each such read makes the host wait for the device.  (It wraps
    functions that TensorFlow and NumPy do not expect to be wrapped: a
    measuring tool, not something to leave in a training script.)
    """
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework import ops

    counts = {"count": 0}
    originals = (ops._EagerTensorBase._numpy, np.array, np.asarray)

    def counting_numpy(tensor: Any) -> Any:
        if not tf.inside_function():  # tracing reads constants once: not a read per step
            counts["count"] += 1
        return originals[0](tensor)

    def counting(convert: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(value: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(value, (ops._EagerTensorBase, tf.Variable)) and not tf.inside_function():
                counts["count"] += 1
            return convert(value, *args, **kwargs)

        return wrapper

    ops._EagerTensorBase._numpy = counting_numpy
    np.array, np.asarray = counting(np.array), counting(np.asarray)
    try:
        yield counts
    finally:
        ops._EagerTensorBase._numpy, np.array, np.asarray = originals


def seconds_per_epoch(run: Callable[[int], Any], epochs: int) -> tuple[float, Any]:
    """Steady-state seconds per epoch of ``run(n_epochs)``, and what the longer run returned.

    For loops that trace anew on every call (``loops.train``, ``model.fit``
    with a fresh model): times ``run(epochs + 1)`` and ``run(1)`` and divides
    the difference by ``epochs``, so the one-off costs paid by both cancel.
    Needs enough epochs for the difference to stand out of the noise.  ``run``
    must end with a read on the host (``loops.train`` and ``fit`` return a
    history of Python floats, so they do).
    """
    epochs = check_positive_int(epochs, "epochs")
    start = time.perf_counter()
    result = run(epochs + 1)
    long = time.perf_counter() - start
    start = time.perf_counter()
    run(1)
    short = time.perf_counter() - start
    return max(long - short, 0.0) / epochs, result


def race(
    factories: Mapping[str, Factory], epochs: Mapping[str, int], repeats: int = 3
) -> tuple[dict[str, float], dict[str, Any]]:
    """Median seconds per epoch of every rung, after a warm-up epoch, and each rung's model.

    For every repeat and every rung, in turn: build it with ``factory()``, run
    one epoch to pay for tracing and compilation, then time ``run(epochs[name])``
    up to :func:`wait_for_device` (on a GPU, the end of the work, not of its queuing).
    Taking the rungs in turn within each repeat means a machine that gets busier
    or quieter affects all of them alike.  The models returned (from the last
    repeat) have trained ``1 + epochs[name]`` epochs.
    """
    repeats = check_positive_int(repeats, "repeats")
    samples: dict[str, list[float]] = {name: [] for name in factories}
    trained: dict[str, Any] = {}
    for _ in range(repeats):
        for name, factory in factories.items():
            n = check_positive_int(epochs[name], f"epochs[{name!r}]")
            model, run = factory()
            run(1)  # warm-up: tracing and compilation are not timed
            wait_for_device(model)
            start = time.perf_counter()
            run(n)
            wait_for_device(model)  # the device's work, not only its queuing
            samples[name].append((time.perf_counter() - start) / n)
            trained[name] = model
    return {name: statistics.median(values) for name, values in samples.items()}, trained


def step_flops(step: Callable[..., Any], *specs: Any) -> int:
    """Floating-point operations of one call of ``step`` on tensors of ``specs``.

    ``step`` is a Python function of tensors (a train step body, say) and
    ``specs`` are ``tf.TensorSpec``s with a fixed batch size.  The function is
    traced, not run, and TensorFlow's profiler adds up the operations of the
    graph's matmuls, convolutions and elementwise ops (2 per multiply-add).
    """
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer, option_builder

    if not specs or not all(isinstance(s, tf.TensorSpec) and s.shape.is_fully_defined() for s in specs):
        raise ValueError("specs must be tf.TensorSpec objects with fully defined shapes")
    graph = tf.function(step).get_concrete_function(*specs).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(model_analyzer.profile(graph, options=options).total_float_ops)


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of the fastest of ``repeats`` ``size`` x ``size`` float32 matmuls on this machine.

    A large matmul is the best case for the hardware: what a training step
    achieves, divided by this, says how far it is from the machine's limit.
    """
    import tensorflow as tf

    size = check_positive_int(size, "size")
    repeats = check_positive_int(repeats, "repeats")
    a = tf.random.stateless_normal((size, size), seed=(0, 1))
    matmul = tf.function(lambda a: tf.reduce_sum(tf.matmul(a, a)))
    float(matmul(a))  # warm-up: tracing and the first allocation
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        float(matmul(a))  # the read waits for the device
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9
