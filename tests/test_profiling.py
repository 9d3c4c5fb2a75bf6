"""The profiler-trace reader against real traces: an input-bound loop, a compute-bound one, the errors."""

from __future__ import annotations

import re
import time

import pytest
import tensorflow as tf

from tutorial_helpers import profiling
from tutorial_helpers.profiling import StepTime

READ_S = 0.03  # each batch sleeps this long in the input pipeline
FEATURES = 64


def slow_batches(cache: bool) -> tf.data.Dataset:
    """4 batches, endlessly, each read in ``READ_S`` (Python sleeps); cached and prefetched, or not."""

    def read(x: tf.Tensor) -> tf.Tensor:
        time.sleep(READ_S)
        return x

    dataset = tf.data.Dataset.from_tensor_slices(tf.random.normal((32, FEATURES))).batch(8)
    dataset = dataset.map(lambda x: tf.ensure_shape(tf.py_function(read, [x], tf.float32), (None, FEATURES)))
    if cache:  # the first epoch reads (and fills the cache), the later ones do not
        return dataset.cache().repeat().prefetch(tf.data.AUTOTUNE)
    return dataset.repeat()


def make_step(width: int, layers: int = 1) -> tf.types.experimental.PolymorphicFunction:
    """A compiled train step: a matmul into ``width`` features, then ``layers`` ``width`` x ``width`` ones."""
    w_in = tf.Variable(tf.random.normal((FEATURES, width)) * 0.05)
    w = tf.Variable(tf.random.normal((width, width)) * 0.05)

    @tf.function
    def train_step(x: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            h = tf.matmul(x, w_in)
            for _ in range(layers):
                h = tf.tanh(tf.matmul(h, w))
            loss = tf.reduce_mean(h**2)
        gradients = tape.gradient(loss, [w_in, w])
        w_in.assign_sub(0.1 * gradients[0])
        w.assign_sub(0.1 * gradients[1])
        return loss

    return train_step


def check_split(times: list[StepTime]) -> None:
    for step in times:
        assert 0 <= step.input_ms and 0 <= step.compute_ms
        assert step.input_ms + step.compute_ms <= step.total_ms + 1e-9  # parts of the step, never more
        assert step.other_ms == pytest.approx(step.total_ms - step.input_ms - step.compute_ms, abs=1e-9)


def test_slow_pipeline_is_input_bound(tmp_path) -> None:
    times = profiling.trace_steps(make_step(8), slow_batches(cache=False), tmp_path, steps=6)
    assert [step.step for step in times] == list(range(6))
    check_split(times)
    assert profiling.input_share(times) > 0.5  # about 0.95 measured: 30 ms reads, 1 ms steps
    assert sorted(step.input_ms for step in times)[3] > 0.5 * READ_S * 1000  # most steps wait a read


def test_cached_prefetched_pipeline_is_compute_bound(tmp_path) -> None:
    # warm-up: 4 steps read the 4 batches into the cache, a fifth reads from it
    times = profiling.trace_steps(make_step(512, layers=4), slow_batches(cache=True), tmp_path, 6, warmup=5)
    assert len(times) == 6
    check_split(times)
    assert profiling.input_share(times) < 0.3  # about 0.01 measured: 0.05 ms to fetch, 8 ms steps
    assert all(step.compute_ms > step.input_ms for step in times)


def test_step_numbers_and_an_iterator_read_inside_the_function(tmp_path, capfd) -> None:
    """Any step numbers come back; ``next(iterator)`` inside the ``tf.function`` is input, not compute.

    Also: ``start``/``stop`` print nothing (with ``TF_CPP_MIN_LOG_LEVEL=3``, as in
    the notebooks), and the profiler can be started again after a ``stop``.
    """
    w = tf.Variable(tf.ones((FEATURES, 4)))

    @tf.function
    def step_from(iterator: tf.data.Iterator) -> tf.Tensor:
        loss = tf.reduce_sum(tf.matmul(next(iterator), w))
        w.assign_sub(1e-3 * tf.ones_like(w))
        return loss

    iterator = iter(slow_batches(cache=False))
    step_from(iterator)  # trace it before the profile
    capfd.readouterr()
    for logdir in (tmp_path / "first", tmp_path / "second"):
        tf.profiler.experimental.start(str(logdir))
        for number in range(10, 14):
            with tf.profiler.experimental.Trace("train", step_num=number, _r=1):
                float(step_from(iterator))
        tf.profiler.experimental.stop()
        assert capfd.readouterr() == ("", "")
        times = profiling.read_step_times(logdir)
        assert [step.step for step in times] == [10, 11, 12, 13]
        check_split(times)
        assert profiling.input_share(times) > 0.5
        assert all(step.compute_ms < step.input_ms for step in times)  # the wait is not counted twice


def test_a_batch_fetched_before_the_trace_block_is_not_seen(tmp_path) -> None:
    """``for batch in dataset: with Trace(...)`` fetches between the steps: no input time in them."""
    train_step = make_step(8)
    batches = slow_batches(cache=False).take(4)
    train_step(next(iter(batches)))
    tf.profiler.experimental.start(str(tmp_path))
    for number, batch in enumerate(batches):
        with tf.profiler.experimental.Trace("train", step_num=number, _r=1):
            float(train_step(batch))
    tf.profiler.experimental.stop()
    times = profiling.read_step_times(tmp_path)
    assert len(times) == 4
    assert profiling.input_share(times) == 0.0


def test_no_trace_raises_file_not_found(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
        profiling.read_step_times(tmp_path)
    with pytest.raises(FileNotFoundError, match="never-made"):
        profiling.read_step_times(tmp_path / "never-made")


def test_a_trace_without_step_annotations_raises(tmp_path) -> None:
    train_step = make_step(8)
    x = tf.ones((8, FEATURES))
    train_step(x)
    tf.profiler.experimental.start(str(tmp_path))
    float(train_step(x))
    tf.profiler.experimental.stop()
    assert profiling.latest_trace(tmp_path).name.endswith(".xplane.pb")
    assert profiling.latest_trace(tmp_path).parent.parent == tmp_path / "plugins" / "profile"
    with pytest.raises(ValueError, match=r"Trace\('train', step_num=step, _r=1\)"):
        profiling.read_step_times(tmp_path)


def test_interval_arithmetic() -> None:
    merged = profiling._union([(5, 8), (0, 2), (1, 3), (8, 9)])
    assert merged == [(0, 3), (5, 9)]
    assert profiling._intersect(merged, [(2, 6)]) == [(2, 3), (5, 6)]
    assert profiling._intersect(merged, [(3, 5)]) == []
    assert profiling._ps(merged) == 7


def test_input_share_and_other_time() -> None:
    steps = [StepTime(0, 10.0, 6.0, 3.0), StepTime(1, 30.0, 2.0, 27.0)]
    assert profiling.input_share(steps) == pytest.approx(8.0 / 40.0)
    assert steps[0].other_ms == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least one step"):
        profiling.input_share([])
