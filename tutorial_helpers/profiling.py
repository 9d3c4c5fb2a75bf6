"""Where the time of a training step goes, read from a TensorBoard profiler trace.

``tf.profiler.experimental.start(logdir)`` ... ``stop()`` writes one file per
host, ``logdir/plugins/profile/<YYYY_MM_DD_HH_MM_SS>/<host>.xplane.pb``: an
``XSpace`` protobuf (TensorFlow ships its Python class).  Its host plane,
``/host:CPU``, has one line per thread; each line holds timed events, each
event a name and stats.  This module reads three kinds of events there, all
named in the profiler's own schema (``xplane_schema.cc``) and used the same way
by TensorBoard's Profile tab:

* a *step*: any event with a ``step_num`` stat, which
  ``tf.profiler.experimental.Trace("train", step_num=step, _r=1)`` records
  around each step (the Profile tab wants a name beginning ``train`` or ``test``);
* *waiting for input*: events whose name begins with ``IteratorGetNext``
  (``IteratorGetNextOp::DoCompute``, the kernel that hands over the next
  batch; the Profile tab counts the same events as "Input");
* *the step function*: events with a ``tf_function_call`` stat, recorded for
  each call of a ``tf.function`` (named after the Python function; a call that
  traces it anew counts its tracing too).

A step's input time is the part of the step covered by input events, on any
thread; its compute time is the part covered by ``tf.function`` calls, less the
input time inside them (a loop that calls ``next(iterator)`` inside its
``tf.function`` waits there).  The rest (Python between the calls, eager ops)
is :attr:`StepTime.other_ms`.  The batch must be fetched *inside* the
``Trace`` block: ``for batch in dataset:`` fetches it before, between steps.
On a GPU the step function returns before the device is done; read its result
inside the block (:func:`trace_steps` does) and the wait lands in ``other_ms``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tutorial_helpers.validation import check_non_negative_int, check_positive_int

HOST_PLANE = "/host:CPU"
STEP_STAT = "step_num"
INPUT_PREFIX = "IteratorGetNext"
FUNCTION_STAT = "tf_function_call"

_Interval = tuple[int, int]  # [begin, end) in picoseconds


@dataclass(frozen=True)
class StepTime:
    """One traced step: its number and milliseconds in all, waiting for input, in the step function."""

    step: int
    total_ms: float
    input_ms: float
    compute_ms: float

    @property
    def other_ms(self) -> float:
        """The rest of the step: Python between the calls, eager ops, waiting for a device's result."""
        return max(self.total_ms - self.input_ms - self.compute_ms, 0.0)


def latest_trace(logdir: str | os.PathLike) -> Path:
    """The newest ``*.xplane.pb`` file under ``logdir`` (``logdir`` itself if it is one)."""
    root = Path(logdir)
    if root.is_file() and root.name.endswith(".xplane.pb"):
        return root
    traces = list(root.rglob("*.xplane.pb")) if root.is_dir() else []
    if not traces:
        raise FileNotFoundError(
            f"no profiler trace (*.xplane.pb) under {str(logdir)!r}: trace some steps between "
            f"tf.profiler.experimental.start({str(logdir)!r}) and tf.profiler.experimental.stop()"
        )
    return max(traces, key=lambda path: (path.stat().st_mtime_ns, str(path)))


def _union(intervals: Iterable[_Interval]) -> list[_Interval]:
    """The intervals merged: sorted and disjoint."""
    merged: list[_Interval] = []
    for begin, end in sorted(intervals):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((begin, end))
    return merged


def _intersect(a: Sequence[_Interval], b: Sequence[_Interval]) -> list[_Interval]:
    """Where two merged lists of intervals overlap (merged too)."""
    out: list[_Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        begin, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if begin < end:
            out.append((begin, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _ps(intervals: Iterable[_Interval]) -> int:
    return sum(end - begin for begin, end in intervals)


def read_step_times(logdir: str | os.PathLike) -> list[StepTime]:
    """The steps of the newest trace under ``logdir``, in the order they ran (see the module's notes).

    Raises ``FileNotFoundError`` if there is no trace, ``ValueError`` if it
    holds no step annotations.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = latest_trace(logdir)
    space = xplane_pb2.XSpace()
    space.ParseFromString(path.read_bytes())
    steps: list[tuple[int, int, int]] = []  # (begin, end, step number)
    inputs: list[_Interval] = []
    functions: list[_Interval] = []
    for plane in space.planes:
        if plane.name != HOST_PLANE:
            continue
        stat_names = {key: meta.name for key, meta in plane.stat_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                begin = line.timestamp_ns * 1000 + event.offset_ps
                interval = (begin, begin + event.duration_ps)
                stats = {stat_names.get(stat.metadata_id): stat for stat in event.stats}
                if STEP_STAT in stats:
                    number = stats[STEP_STAT]
                    steps.append((*interval, int(getattr(number, number.WhichOneof("value")))))
                if plane.event_metadata[event.metadata_id].name.startswith(INPUT_PREFIX):
                    inputs.append(interval)
                if FUNCTION_STAT in stats:
                    functions.append(interval)
    if not steps:
        raise ValueError(
            f"the trace {str(path)!r} holds no step annotations: wrap each step in "
            "tf.profiler.experimental.Trace('train', step_num=step, _r=1)"
        )
    inputs, functions = _union(inputs), _union(functions)
    times = []
    for begin, end, number in sorted(steps):
        window = [(begin, end)]
        waiting = _intersect(inputs, window)
        calls = _intersect(functions, window)
        compute = _ps(calls) - _ps(_intersect(calls, waiting))
        times.append(StepTime(number, (end - begin) / 1e9, _ps(waiting) / 1e9, compute / 1e9))
    return times


def input_share(step_times: Sequence[StepTime]) -> float:
    """The share of the steps' time spent waiting for input: near 1, input-bound; near 0, compute-bound."""
    total = sum(step.total_ms for step in step_times)
    if total <= 0:
        raise ValueError("step_times must hold at least one step of positive duration")
    return sum(step.input_ms for step in step_times) / total


def trace_steps(
    step: Callable[..., Any], batches: Any, logdir: str | os.PathLike, steps: int, warmup: int = 1
) -> list[StepTime]:
    """Run ``warmup`` steps, then trace ``steps`` more into ``logdir``; return :func:`read_step_times`.

    ``batches`` is a ``tf.data.Dataset`` or an iterator over one; each step
    calls ``step(*batch)`` (``step(batch)`` if the batch is not a tuple).  The
    warm-up steps are not traced: they pay for tracing the ``tf.function`` and
    starting the pipeline.  Each traced step, numbered from 0, fetches its
    batch and reads the step's result on the host inside
    ``Trace("train", step_num=n, _r=1)``.  Traces started within the same
    second go to the same file: give each experiment its own ``logdir``.
    """
    import numpy as np
    import tensorflow as tf

    steps = check_positive_int(steps, "steps")
    warmup = check_non_negative_int(warmup, "warmup")
    iterator = iter(batches)

    def run_one() -> None:
        batch = next(iterator)
        result = step(*batch) if isinstance(batch, tuple) else step(batch)
        for value in tf.nest.flatten(result):
            np.asarray(value)  # the result on the host: the device's work is done

    for _ in range(warmup):
        run_one()
    tf.profiler.experimental.start(str(logdir))
    try:
        for number in range(steps):
            with tf.profiler.experimental.Trace("train", step_num=number, _r=1):
                run_one()
    finally:
        tf.profiler.experimental.stop()
    return read_step_times(logdir)
