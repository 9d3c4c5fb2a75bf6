"""Chapter 10: feeding a compiled step without making the host wait.

A loop that turns every step's loss into a Python float (``float(loss)``, to
check that it is finite) makes the host wait for the device at every step: on
a GPU, the device then idles while Python prepares the next call.  The loops
in this package never do that.  Instead:

* :class:`LossWatch` counts the steps and remembers the first step whose loss
  was not finite, in variables updated *inside* the compiled step; the host
  reads them once, at the end of the epoch, and still reports the exact step;
* :class:`ArrayFeed` holds in-memory arrays as tensors and cuts (or, for a
  shuffled order, gathers) each batch inside the graph, so no input pipeline
  runs beside the step and nothing is handed over from Python;
* :func:`compile_array_steps` and :func:`compile_iterator_steps` compile a step
  body into a function that runs ``count`` steps per call, from an
  :class:`ArrayFeed` or from a ``tf.data`` iterator pulled with ``next()``
  inside the graph (as ``fit()`` does).

The batches are exactly those of ``Dataset.batch(batch_size)``, the partial
last one included, so the results do not change: only where the time goes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from tutorial_helpers.validation import check_positive_int

__all__ = ["ArrayFeed", "LossWatch", "compile_array_steps", "compile_iterator_steps"]

StepBody = Callable[..., tf.Tensor]


class LossWatch:
    """Step counter and first non-finite loss of an epoch, kept on the device.

    Inside the compiled code, :meth:`record` notes one step and
    :meth:`record_call` a call of several steps (whose loop carries the first
    bad step itself, which costs less than updating variables at every step);
    :meth:`check` reads the counters on the host, once, and raises
    ``FloatingPointError`` naming the epoch and the 1-based step at which the
    loss stopped being finite.
    """

    def __init__(self) -> None:
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps_done")
        self.first_bad = tf.Variable(-1, dtype=tf.int64, trainable=False, name="first_bad_step")
        self.bad_loss = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="first_bad_loss")

    def reset(self) -> None:
        """Start a new epoch: no steps, no bad loss."""
        self.steps.assign(0)
        self.first_bad.assign(-1)

    def record(self, loss: tf.Tensor) -> None:
        """Count one step; remember it (and its loss) if its loss is the first non-finite one."""
        loss = tf.cast(loss, tf.float32)
        self.record_call(1, tf.where(tf.math.is_finite(loss), tf.constant(0, tf.int64), 1), loss)

    def record_call(self, count: tf.Tensor, first_bad: tf.Tensor, bad_loss: tf.Tensor) -> None:
        """Count ``count`` steps, of which the ``first_bad``-th (1-based; 0: none) had loss ``bad_loss``."""
        new = tf.logical_and(self.first_bad < 0, first_bad > 0)
        self.first_bad.assign(tf.where(new, self.steps + first_bad, self.first_bad))
        self.bad_loss.assign(tf.where(new, bad_loss, self.bad_loss))
        self.steps.assign_add(tf.cast(count, tf.int64))

    def check(
        self,
        epoch: int,
        what: str = "loss",
        hint: str = "lower the learning rate, clip gradients, or check the data",
    ) -> int:
        """Return the steps done this epoch; raise ``FloatingPointError`` if a loss was not finite.

        The message reads ``"<what> became nan at epoch E, step S: <hint>"``.
        """
        steps, first_bad = (int(v) for v in tf.stack([self.steps, self.first_bad]).numpy())
        if first_bad >= 0:
            raise FloatingPointError(
                f"{what} became {float(self.bad_loss.numpy())} at epoch {epoch}, step {first_bad}: {hint}"
            )
        return steps


def _steps_loop(count: tf.Tensor, step: Callable[[tf.Tensor], tf.Tensor], watch: LossWatch) -> None:
    """Run ``step(i)`` for ``i`` in ``range(count)`` in a graph loop that carries the first bad loss."""
    first_bad, bad_loss = tf.constant(0, tf.int64), tf.constant(0.0)
    for i in tf.range(count):
        loss = tf.cast(step(i), tf.float32)
        new = tf.logical_and(first_bad == 0, tf.logical_not(tf.math.is_finite(loss)))
        first_bad = tf.where(new, i + 1, first_bad)
        bad_loss = tf.where(new, loss, bad_loss)
    watch.record_call(count, first_bad, bad_loss)


class ArrayFeed:
    """In-memory arrays as tensors, cut into the batches of ``Dataset.batch(batch_size)`` in the graph.

    With ``shuffled=True`` the rows are taken in the order last given to
    :meth:`set_order` (a permutation), gathered batch by batch.
    """

    def __init__(self, arrays: Sequence[np.ndarray], batch_size: int, shuffled: bool = False) -> None:
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.tensors = tuple(tf.constant(np.asarray(a, dtype=np.float32)) for a in arrays)
        self.size = int(self.tensors[0].shape[0])
        #: batches per epoch, the partial last one included
        self.steps = math.ceil(self.size / self.batch_size)
        self.order = tf.Variable(tf.range(self.size, dtype=tf.int64), trainable=False) if shuffled else None

    def set_order(self, permutation: np.ndarray) -> None:
        """Take the rows in this order from now on (a permutation of ``range(size)``)."""
        if self.order is None:
            raise ValueError("this ArrayFeed was made with shuffled=False")
        permutation = np.asarray(permutation)
        if not np.array_equal(np.sort(permutation), np.arange(self.size)):
            raise ValueError(f"permutation must hold each of 0..{self.size - 1} once")
        self.order.assign(permutation.astype(np.int64))

    def batch(self, index: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """Batch number ``index`` (0-based), inside the graph."""
        start = tf.cast(index, tf.int64) * self.batch_size
        end = tf.minimum(start + self.batch_size, self.size)
        if self.order is None:
            return tuple(t[start:end] for t in self.tensors)
        rows = self.order[start:end]
        return tuple(tf.gather(t, rows) for t in self.tensors)


def compile_array_steps(
    run: StepBody, feed: ArrayFeed, watch: LossWatch, per_call: int
) -> Callable[[int], None]:
    """Compile ``steps(count)``: the next ``count`` steps of ``run`` on ``feed``'s batches.

    The batch index is the watch's step counter, so :meth:`LossWatch.reset`
    starts the epoch at its first batch.  With ``per_call=1`` the function has
    no loop and takes no argument, the cheapest call there is.
    """
    per_call = check_positive_int(per_call, "per_call")

    def one_step() -> None:
        watch.record(run(*feed.batch(watch.steps)))

    if per_call == 1:
        single = tf.function(one_step)
        return lambda count: single()

    @tf.function
    def several(count):
        start = watch.steps.read_value()
        _steps_loop(count, lambda i: run(*feed.batch(start + i)), watch)

    return lambda count: several(tf.constant(count, dtype=tf.int64))


def compile_iterator_steps(run: StepBody, watch: LossWatch, per_call: int) -> Callable[..., None]:
    """Compile ``steps(iterator, count)``: ``count`` steps on batches pulled by ``next()`` in the graph.

    At the end of the data the call raises ``tf.errors.OutOfRangeError`` before
    anything is updated (``fit()`` relies on the same).
    """
    per_call = check_positive_int(per_call, "per_call")

    def one_step(iterator) -> None:
        watch.record(run(*next(iterator)))

    if per_call == 1:
        single = tf.function(one_step)
        return lambda iterator, count: single(iterator)

    @tf.function
    def several(iterator, count):
        _steps_loop(count, lambda i: run(*next(iterator)), watch)

    return lambda iterator, count: several(iterator, tf.constant(count, dtype=tf.int64))
