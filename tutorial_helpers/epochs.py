"""One epoch of training and one validation pass: the machinery every loop in the book shares.

:func:`loops.train <tutorial_helpers.loops.train>` (Chapter 2) and
:class:`~tutorial_helpers.trainer.Trainer` (Chapter 8) run their epochs through
the same :class:`EpochRunner`, so they batch the data, reset and read the
metrics, notice a non-finite loss and validate in exactly the same way; they
differ only in what they do *between* epochs (progress bar; callbacks,
checkpoints, early stopping).

Before anything is compiled, :func:`check_data_for_model` checks the data
against the model and the loss: a tuple of arrays or a batched dataset of
``(x, y[, sample_weight])``, and targets whose shape matches the model's
output instead of broadcasting against it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tutorial_helpers.feeds import ArrayFeed, LossWatch, compile_array_steps, compile_iterator_steps
from tutorial_helpers.steps import runner
from tutorial_helpers.validation import check_positive_int, check_same_length, check_targets_match_outputs

__all__ = [
    "EpochRunner", "as_dataset", "check_data_for_model", "checked_arrays", "epoch_calls",
    "metric_results", "metric_tensors", "reset_metrics",
]


def as_dataset(data: Any, batch_size: int | None = None, name: str = "train_data") -> tf.data.Dataset:
    """Return ``data`` as a batched ``tf.data.Dataset`` of ``(x, y)`` or ``(x, y, sample_weight)``.

    ``data`` is either such a dataset (already batched; ``batch_size`` must then
    be ``None``) or a tuple of arrays ``(x, y)`` / ``(x, y, sample_weight)`` that is
    cut, in order, into batches of ``batch_size``.  Raises ``ValueError`` or
    ``TypeError`` naming ``name`` for anything else.
    """
    if isinstance(data, tf.data.Dataset):
        if batch_size is not None:
            raise ValueError(f"{name} is already a tf.data.Dataset: batch it there, not with batch_size")
        spec = data.element_spec
        if not isinstance(spec, tuple) or len(spec) not in (2, 3):
            raise ValueError(
                f"{name} must yield (x, y) or (x, y, sample_weight) tuples, got elements of {spec}"
            )
        if any(part.shape.rank == 0 for part in spec):
            raise ValueError(f"{name} must be batched: it yields scalars (call .batch(n) on it)")
        leading = {part.shape[0] for part in spec if part.shape[0] is not None}
        if len(leading) > 1:
            raise ValueError(
                f"{name} must be batched: it yields parts with different first dimensions "
                f"{sorted(leading)} (call .batch(n) on it)"
            )
        if data.cardinality() == 0:
            raise ValueError(f"{name} is empty")
        return data
    arrays = checked_arrays(data, batch_size, name)
    return tf.data.Dataset.from_tensor_slices(tuple(arrays)).batch(batch_size)


def checked_arrays(data: Any, batch_size: int | None, name: str = "train_data") -> list[np.ndarray]:
    """``data``, a tuple ``(x, y[, sample_weight])`` of numeric arrays of one length, as float32 arrays.

    Raises ``TypeError`` or ``ValueError`` naming ``name`` for anything else,
    and for a missing or non-positive ``batch_size``.
    """
    if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
        raise TypeError(
            f"{name} must be a tf.data.Dataset or a tuple (x, y[, sample_weight]), "
            f"got {type(data).__name__}"
        )
    arrays = []
    for part, label in zip(data, ("x", "y", "sample_weight"), strict=False):
        array = np.asarray(part)
        if array.dtype == object or not np.issubdtype(array.dtype, np.number):
            raise TypeError(f"{name}: {label} must be numeric, got dtype {array.dtype}")
        if array.ndim == 0 or len(array) == 0:
            raise ValueError(f"{name}: {label} must not be empty")
        arrays.append(array.astype(np.float32))
    for array, label in zip(arrays[1:], ("y", "sample_weight"), strict=False):
        check_same_length(arrays[0], array, f"{name}: x", label)
    if batch_size is None:
        raise ValueError(f"batch_size is required when {name} is a tuple of arrays")
    check_positive_int(batch_size, "batch_size")
    return arrays


def metric_results(
    loss_tracker: keras.metrics.Metric, metrics: Sequence[keras.metrics.Metric]
) -> dict[str, float]:
    """``{"loss": ..., <metric name>: ...}`` as Python floats."""
    logs = {"loss": float(loss_tracker.result())}
    for metric in metrics:
        logs[metric.name] = float(metric.result())
    return logs


def reset_metrics(loss_tracker: keras.metrics.Metric, metrics: Sequence[keras.metrics.Metric]) -> None:
    """Reset the loss tracker and every metric (Keras 3: ``reset_state``)."""
    loss_tracker.reset_state()
    for metric in metrics:
        metric.reset_state()


def _distribute(dataset: tf.data.Dataset) -> Any:
    """Split each batch across the replicas of the current strategy, if there is one."""
    if tf.distribute.has_strategy():
        return tf.distribute.get_strategy().experimental_distribute_dataset(dataset)
    return dataset


def epoch_calls(
    body: Callable[..., tf.Tensor],
    data: Any,
    batch_size: int | None,
    *,
    per_call: int | str,
    watch: LossWatch,
    name: str = "train_data",
    feed: ArrayFeed | None = None,
    before_call: Callable[[int], None] | None = None,
) -> tuple[Callable[[], Iterator[int]], int | None]:
    """Compile ``body`` to run over ``data`` and return ``(run_epoch, steps per epoch or None)``.

    ``run_epoch()`` runs one epoch, ``per_call`` steps per compiled call
    (``"epoch"``: all of them), and yields the number of steps done after each
    call.  It never reads a result on the host: ``watch`` counts the steps and
    the first non-finite loss (``run_epoch`` resets it; check it after).
    In-memory arrays are cut into batches inside the graph (an
    :class:`~tutorial_helpers.feeds.ArrayFeed`; pass ``feed`` to reuse one, for
    instance a shuffled one), except under a distribution strategy; a dataset
    of known length is read with ``next()`` inside the graph; one of unknown
    length is iterated from Python, one compiled step per batch (``per_call``
    must then be 1 or ``"epoch"``, which mean the same there).
    ``before_call(steps done)`` runs before each call (a callback's batch-begin hook).
    """
    run = runner(body)
    if feed is None and not isinstance(data, tf.data.Dataset) and not tf.distribute.has_strategy():
        feed = ArrayFeed(checked_arrays(data, batch_size, name), batch_size)
    if feed is not None:
        steps = feed.steps
        call = compile_array_steps(run, feed, watch, steps if per_call == "epoch" else per_call)
        source = None
    else:
        dataset = as_dataset(data, batch_size, name=name)
        cardinality = int(dataset.cardinality())
        steps = cardinality if cardinality > 0 else None
        source = _distribute(dataset)
        if steps is None:
            if per_call not in (1, "epoch"):
                raise ValueError("steps_per_execution > 1 needs a dataset of known length (cardinality)")

            def one_step(*batch) -> None:
                watch.record(run(*batch))

            step = tf.function(one_step, reduce_retracing=True)
        else:
            call = compile_iterator_steps(run, watch, steps if per_call == "epoch" else per_call)

    def run_epoch() -> Iterator[int]:
        watch.reset()
        if steps is None:  # unknown length: iterate from Python
            for done, batch in enumerate(source):
                if before_call is not None:
                    before_call(done)
                step(*batch)
                yield done + 1
            return
        iterator = None if source is None else iter(source)
        done = 0
        while done < steps:
            count = steps - done if per_call == "epoch" else min(per_call, steps - done)
            if before_call is not None:
                before_call(done)
            if iterator is None:
                call(count)
            else:
                call(iterator, count)
            done += count
            yield done

    return run_epoch, steps


def metric_tensors(
    loss_tracker: keras.metrics.Metric, metrics: Sequence[keras.metrics.Metric]
) -> list[tuple[str, tf.Tensor]]:
    """The current results as tensors, for a progress bar that reads them only when it redraws."""
    return [("loss", loss_tracker.result()), *((m.name, m.result()) for m in metrics)]




def _shape_of(part: Any) -> tuple[int | None, ...] | None:
    """The shape of an array or a ``TensorSpec``; ``None`` when not even its rank is known."""
    if isinstance(part, tf.TensorSpec):
        return None if part.shape.rank is None else tuple(part.shape)
    return tuple(np.shape(part))


def model_output_shape(model: keras.Model, x_shape: Sequence[int | None]) -> tuple[int | None, ...] | None:
    """The shape of ``model``'s output (batch ``None``) for inputs of shape ``x_shape``, or ``None``.

    Found by calling the model on one all-zero sample with ``training=False``,
    which also builds an unbuilt model (as its first batch would) and touches
    no data.  ``None`` when the input shape is not fully known.
    """
    if x_shape is None:
        return None
    tail = tuple(x_shape[1:])
    if any(d is None for d in tail):
        return None
    output = model(tf.zeros((1, *tail)), training=False)
    return (None, *tuple(output.shape)[1:]) if hasattr(output, "shape") else None


def check_data_for_model(
    model: keras.Model, data: Any, loss_fn: Any, batch_size: int | None, name: str = "train_data"
) -> None:
    """Check ``data`` as the loops take it, and its targets against ``model``'s output and ``loss_fn``.

    Raises ``TypeError`` or ``ValueError`` naming ``name`` before anything is
    trained: wrong containers, empty or non-numeric arrays, an unbatched dataset,
    a ``batch_size`` given with a dataset (or missing with arrays), targets that
    would broadcast against the predictions, and targets the loss refuses
    (``loss_fn.check_targets(y)``, where the loss has one).
    """
    if isinstance(data, tf.data.Dataset):
        spec = as_dataset(data, batch_size, name).element_spec
        x_shape, y_shape = _shape_of(spec[0]), _shape_of(spec[1])
        y_values = None
    else:
        arrays = checked_arrays(data, batch_size, name)
        x_shape, y_shape, y_values = arrays[0].shape, arrays[1].shape, arrays[1]
    inputs = getattr(model, "inputs", None)
    if inputs and len(inputs) == 1 and inputs[0].shape is not None and x_shape is not None:
        expected = tuple(inputs[0].shape)
        if len(x_shape) != len(expected) or any(
            None not in (d, e) and d != e for d, e in zip(x_shape[1:], expected[1:], strict=False)
        ):
            hint = " Is the dataset batched (.batch(n))?" if isinstance(data, tf.data.Dataset) else ""
            raise ValueError(
                f"{name}: x has shape {tuple(x_shape)} but the model takes inputs of shape {expected}.{hint}"
            )
    output_shape = model_output_shape(model, x_shape)
    if output_shape is not None and y_shape is not None and all(d is not None for d in y_shape[1:]):
        check_targets_match_outputs(y_shape, output_shape, loss_fn, name=f"{name}: y")
    if y_values is not None and hasattr(loss_fn, "check_targets"):
        loss_fn.check_targets(y_values, name=f"{name}: y")


@contextlib.contextmanager
def _interrupts_as_keyboard_interrupt(epoch: int) -> Iterator[None]:
    """Let Ctrl-C inside a Python generator feeding ``tf.data`` arrive as ``KeyboardInterrupt``.

    TensorFlow runs the generator inside an op and reports the interrupt as
    an ``UnknownError`` holding a traceback; a learner pressing Ctrl-C should
    see an interrupt, not an error to debug.
    """
    try:
        yield
    except tf.errors.UnknownError as error:
        if "KeyboardInterrupt" not in (error.message or ""):
            raise
        raise KeyboardInterrupt(f"interrupted while reading the data of epoch {epoch}") from error


class EpochRunner:
    """Compiled calls that run one training epoch, or one validation pass, and return their logs.

    ``train_body`` / ``test_body`` are step bodies from
    :mod:`tutorial_helpers.steps` that update ``loss_tracker`` and ``metrics``
    (and, for training, any ``trackers``, such as a gradient-norm mean).
    ``per_call`` steps run per compiled call (``"epoch"``: all of them).
    ``before_train_call`` / ``before_test_call`` run before each call with the
    steps done so far (a callback's batch-begin hook); ``test_per_call`` is
    ``"epoch"`` unless a callback needs a hook at every validation step.
    """

    def __init__(
        self,
        train_body: Callable[..., tf.Tensor],
        test_body: Callable[..., tf.Tensor],
        loss_tracker: keras.metrics.Metric,
        metrics: Sequence[keras.metrics.Metric],
        train_data: Any,
        batch_size: int | None,
        *,
        validation_data: Any = None,
        per_call: int | str = 1,
        feed: ArrayFeed | None = None,
        watch: LossWatch | None = None,
        trackers: Sequence[keras.metrics.Metric] = (),
        before_train_call: Callable[[int], None] | None = None,
        before_test_call: Callable[[int], None] | None = None,
        test_per_call: int | str = "epoch",
    ) -> None:
        self.loss_tracker, self.metrics, self.trackers = loss_tracker, list(metrics), list(trackers)
        self.watch = LossWatch() if watch is None else watch
        self.run_epoch, self.steps = epoch_calls(
            train_body, train_data, batch_size, per_call=per_call, watch=self.watch, feed=feed,
            before_call=before_train_call,
        )
        self.validation_watch = LossWatch()
        self.run_validation = None
        if validation_data is not None:
            self.run_validation, _ = epoch_calls(
                test_body, validation_data, batch_size, per_call=test_per_call,
                watch=self.validation_watch, name="validation_data", before_call=before_test_call,
            )

    def train_epoch(self, epoch: int, after_call: Callable[[int], None] | None = None) -> dict[str, float]:
        """Run epoch ``epoch`` (1-based, for messages); return ``{"loss": ..., <metric>: ...}``.

        ``after_call(steps done)`` runs after each compiled call.  Raises
        ``FloatingPointError`` with the epoch and step of the first non-finite
        loss, ``ValueError`` if the data yielded no batches.
        """
        reset_metrics(self.loss_tracker, self.metrics)
        for tracker in self.trackers:
            tracker.reset_state()
        with _interrupts_as_keyboard_interrupt(epoch):
            for done in self.run_epoch():
                if after_call is not None:
                    after_call(done)
        #: steps run by the last epoch (read with its results, the one read of the epoch on the host)
        self.steps_done = self.watch.check(epoch)
        if self.steps_done == 0:
            raise ValueError("train_data yielded no batches")
        return metric_results(self.loss_tracker, self.metrics)

    def validate(self, epoch: int, after_call: Callable[[int], None] | None = None) -> dict[str, float]:
        """One pass over the validation data with ``training=False``; its logs, without the ``val_`` prefix.

        A non-finite validation loss raises ``FloatingPointError`` naming the
        epoch and the validation step: a NaN must not reach early stopping or
        a checkpoint as if it were a result.
        """
        if self.run_validation is None:
            raise ValueError("no validation_data was given")
        reset_metrics(self.loss_tracker, self.metrics)
        with _interrupts_as_keyboard_interrupt(epoch):
            for done in self.run_validation():
                if after_call is not None:
                    after_call(done)
        self.validation_watch.check(
            epoch, what="validation loss", hint="check the validation data, or the weights this epoch left"
        )
        return metric_results(self.loss_tracker, self.metrics)
