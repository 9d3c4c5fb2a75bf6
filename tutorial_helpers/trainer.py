"""Chapter 8: a trainer you can trust.

:class:`Trainer` is the hand-written loop of Chapter 2 grown into what real
training needs, each part tested:

* compiled train and validation steps, run epoch by epoch by the same
  :class:`~tutorial_helpers.epochs.EpochRunner` as ``loops.train``,
  metrics, a per-epoch history, gradient clipping, any learning-rate schedule,
  and the global gradient norm and learning rate logged every epoch;
* early stopping with the best weights restored from memory
  (:class:`~tutorial_helpers.early_stopping.EarlyStopper`);
* checkpoints with ``tf.train.Checkpoint`` + ``CheckpointManager`` holding the
  model, the optimizer, the epoch, the history and the early stopper's state,
  so an interrupted run resumes to exactly the weights of an uninterrupted
  one, early stopping and a seeded ``tf.data`` shuffle included; a run
  fingerprint beside them (:mod:`~tutorial_helpers.checkpoints`) keeps another
  run, or changed settings, from resuming silently;
* the faults a learner meets end in a clear error or the right result: a
  NaN loss puts the weights back to the start of the epoch, a re-run cell
  does not take over an old run's checkpoints, the model cannot be swapped
  under the compiled step, and the callbacks' ``on_train_end`` and the log
  writer run on every exit;
* standard Keras callbacks, driven through ``keras.callbacks.CallbackList`` in
  the order ``fit()`` calls them;
* TensorBoard scalars and weight histograms written with ``tf.summary``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tutorial_helpers import data_order, steps
from tutorial_helpers.callbacks import check_callbacks, has_batch_hooks
from tutorial_helpers.checkpoints import (
    CheckpointError,
    RunCheckpoints,
    VariableSnapshot,
    check_writable,
    describe,
    next_run_dir,
    run_fingerprint,
)
from tutorial_helpers.early_stopping import EarlyStopper
from tutorial_helpers.epochs import (
    EpochRunner,
    as_dataset,
    check_data_for_model,
    checked_arrays,
    metric_tensors,
)
from tutorial_helpers.feeds import ArrayFeed, LossWatch
from tutorial_helpers.summaries import write_epoch_summaries
from tutorial_helpers.validation import (
    check_bool,
    check_finite_weights,
    check_loss_fn,
    check_metrics,
    check_optimizer,
    check_positive_int,
)

__all__ = ["CheckpointError", "Trainer"]


def _fixed(name: str, what: str) -> property:
    """A read-only attribute: the compiled step holds the object it was made with."""

    def get(self: Trainer) -> Any:
        return getattr(self, f"_{name}")

    def refuse(self: Trainer, value: Any) -> None:
        raise AttributeError(
            f"a Trainer's {name} cannot be replaced: its compiled train step holds the {what} it was "
            f"made with, so the new one would never be used. Make a new Trainer with the new {what} instead"
        )

    return property(get, refuse, doc=f"The {what} the compiled step uses (fixed when the Trainer is made).")


class Trainer:
    """Train ``model`` with a custom loop that checkpoints, stops early and calls callbacks.

    ``optimizer`` may use a learning-rate schedule; ``loss_fn`` is a Keras loss;
    ``metrics`` are Keras metric objects.  ``global_clipnorm`` / ``clipnorm``
    clip the gradients (at most one).  The model's own losses (weight penalties)
    are added to the loss, as ``fit()`` does.

    :meth:`fit` reads as the list of what one run does: check the arguments,
    build, open the checkpoints, wire the callbacks, then per epoch
    :meth:`_train_one_epoch` (train, validate, callbacks) and
    :meth:`_end_epoch` (history, summaries, early stopping, checkpoint).

    ``model``, ``optimizer`` and ``loss_fn`` cannot be reassigned: the compiled
    step holds the objects it was made with.
    """

    model = _fixed("model", "model")
    optimizer = _fixed("optimizer", "optimizer")
    loss_fn = _fixed("loss_fn", "loss")

    def __init__(
        self,
        model: keras.Model,
        *,
        optimizer: keras.optimizers.Optimizer,
        loss_fn: steps.LossFn,
        metrics: Sequence[keras.metrics.Metric] = (),
        global_clipnorm: float | None = None,
        clipnorm: float | None = None,
    ) -> None:
        if not isinstance(model, keras.Model):
            raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
        check_optimizer(optimizer)
        check_loss_fn(loss_fn)
        self._model, self._optimizer, self._loss_fn = model, optimizer, loss_fn
        self._clipping = {"clipnorm": clipnorm, "global_clipnorm": global_clipnorm}
        self._optimizer_settings = describe(optimizer)  # as given, before any callback changes it
        self.metrics = check_metrics(metrics)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.grad_norm_tracker = keras.metrics.Mean(name="grad_norm")
        self.train_body = steps.train_step_body(
            model, optimizer, loss_fn, self.loss_tracker, self.metrics,
            global_clipnorm=global_clipnorm, clipnorm=clipnorm,
            gradient_norm_tracker=self.grad_norm_tracker,
        )
        self.test_body = steps.test_step_body(model, loss_fn, self.loss_tracker, self.metrics)
        #: the first non-finite loss of an epoch, noticed inside the compiled step
        self.watch = LossWatch()
        #: epochs already done when the last ``fit`` began (restored from a checkpoint)
        self.start_epoch = 0
        #: the folder the last ``fit`` wrote its TensorBoard logs to (a ``run-N`` under ``tensorboard_dir``)
        self.log_dir: Path | None = None
        self._checkpoints: RunCheckpoints | None = None
        self._snapshot: VariableSnapshot | None = None

    # ------------------------------------------------------------ checks
    @staticmethod
    def _check_fit_arguments(
        train_data: Any, shuffle_seed: Any, callbacks: Any, early_stopping: Any,
        checkpoint_dir: Any, max_checkpoints: Any, tensorboard_dir: Any, verbose: Any, resume: Any,
    ) -> None:
        """Everything about ``fit``'s arguments that can be checked before anything is built."""
        if shuffle_seed is not None:
            if isinstance(train_data, tf.data.Dataset):
                raise ValueError("shuffle_seed works on arrays; shuffle a tf.data.Dataset in the pipeline")
            if isinstance(shuffle_seed, bool) or not isinstance(shuffle_seed, (int, np.integer)) \
                    or shuffle_seed < 0:
                raise TypeError(f"shuffle_seed must be None or an int >= 0, got {shuffle_seed!r}")
        check_callbacks(callbacks)
        if early_stopping is not None and not isinstance(early_stopping, EarlyStopper):
            raise TypeError(
                f"early_stopping must be an EarlyStopper, got {type(early_stopping).__name__} "
                "(a keras.callbacks.EarlyStopping goes in callbacks=)"
            )
        for name, value in (("checkpoint_dir", checkpoint_dir), ("tensorboard_dir", tensorboard_dir)):
            if value is not None and not isinstance(value, (str, Path)):
                raise TypeError(f"{name} must be a path (str or pathlib.Path), got {type(value).__name__}")
        check_positive_int(max_checkpoints, "max_checkpoints")
        if check_bool(resume, "resume") and checkpoint_dir is None:
            raise ValueError("resume=True needs the checkpoint_dir of the run to resume")
        if verbose not in (0, 1) or isinstance(verbose, bool):
            raise ValueError(f"verbose must be 0 or 1, got {verbose!r}")

    # ----------------------------------------------------------------- data
    def _build(self, train_data: Any, batch_size: int | None) -> None:
        """Create the model's and optimizer's variables, so a checkpoint can fill them.

        The data check has already built the model from an all-zero sample
        where the input shape is known.  A dataset that does not say its
        input shape is refused rather than peeked at: a batch read to build
        the model would be lost to a generator that can be read only once.
        """
        if not self.model.built:
            if isinstance(train_data, tf.data.Dataset):
                raise ValueError(
                    f"the model is not built and train_data does not give the shape of its inputs "
                    f"({as_dataset(train_data).element_spec[0]}): build the model first "
                    "(keras.Input(shape=...) or model.build((None, n_features))), or give the dataset "
                    "that shape (output_signature=(tf.TensorSpec((None, n_features)), ...))"
                )
            first = tuple(a[:1] for a in checked_arrays(train_data, batch_size))
            self.model(first[0])
        if not self.optimizer.built:
            self.optimizer.build(self.model.trainable_variables)
        if self._snapshot is None:
            self._snapshot = VariableSnapshot([*self.model.variables, *self.optimizer.variables])

    @staticmethod
    def _epoch_order(feed: ArrayFeed | None, shuffle_seed: int | None, epoch: int) -> None:
        """Arrays are shuffled with a permutation that depends only on ``(shuffle_seed, epoch)``,
        so a resumed run sees the same order."""
        if feed is not None and shuffle_seed is not None:
            feed.set_order(np.random.default_rng([shuffle_seed, epoch]).permutation(feed.size))

    # ---------------------------------------------------------- checkpoints
    def _open_checkpoints(
        self, checkpoint_dir: str | Path | None, fingerprint: dict[str, Any], resume: bool,
        early_stopping: EarlyStopper | None, max_checkpoints: int, verbose: int,
    ) -> tuple[int, dict[str, list[float]]]:
        """Open ``checkpoint_dir``; return the epochs already done there (0: fresh) and their history."""
        self._checkpoints = None
        if early_stopping is not None:
            early_stopping.reset()  # a stopper reused from an earlier run starts over (unless it resumes)
        if checkpoint_dir is None:
            return 0, {}
        self._checkpoints = RunCheckpoints(
            checkpoint_dir, self.model, self.optimizer, early_stopping, max_to_keep=max_checkpoints
        )
        start_epoch, history = self._checkpoints.open(fingerprint, resume)
        if verbose:
            print(f"resuming after epoch {start_epoch}" if start_epoch else "starting fresh")
        return start_epoch, history

    def _open_log_dir(self, tensorboard_dir: str | Path | None) -> Path | None:
        """The run's own subfolder of ``tensorboard_dir``: a new ``run-N``, or the resumed run's."""
        if tensorboard_dir is None:
            return None
        folder = self._checkpoints.folder if self._checkpoints is not None else None
        saved = folder.info.get("tensorboard_run") if folder is not None and self.start_epoch else None
        if saved:
            log_dir = check_writable(Path(tensorboard_dir) / saved, "tensorboard_dir")
        else:
            log_dir = next_run_dir(tensorboard_dir)
        if folder is not None:
            folder.info["tensorboard_run"] = log_dir.name
            folder.write()
        return log_dir

    # ------------------------------------------------------------ callbacks
    def _callback_list(
        self, callbacks: Sequence[keras.callbacks.Callback], epochs: int, verbose: int
    ) -> tuple[keras.callbacks.CallbackList, bool, bool]:
        """The callbacks as ``fit()`` drives them, and whether any has train / test batch hooks."""
        # What fit() does before its first epoch: the model knows its optimizer,
        # and callbacks (EarlyStopping) may set model.stop_training.
        self.model.optimizer = self.optimizer
        self.model.stop_training = False
        callback_list = keras.callbacks.CallbackList(
            list(callbacks), add_history=False, add_progbar=verbose != 0, verbose=verbose,
            epochs=epochs, model=self.model,
        )
        # Batch hooks turn the logs into Python floats (a host read per step),
        # so they run only when a callback has one, as the progress bar does.
        train_hooks = verbose != 0 or any(has_batch_hooks(c, "train") for c in callbacks)
        test_hooks = any(has_batch_hooks(c, "test") for c in callbacks)
        return callback_list, train_hooks, test_hooks

    # ------------------------------------------------------------ the loop
    def _train_one_epoch(
        self, runner: EpochRunner, epoch: int, callbacks: keras.callbacks.CallbackList,
        train_hooks: bool, test_hooks: bool, has_validation: bool,
    ) -> dict[str, float]:
        """Train one epoch, validate, and call the callbacks' epoch-end hooks; return the logs.

        A non-finite loss (training or validation) puts the model's and the
        optimizer's variables back as they were at the start of the epoch, the
        last finite state, before the ``FloatingPointError`` leaves: a re-run
        cell then starts from finite weights, and fails at the same step again.
        """
        callbacks.on_epoch_begin(epoch)

        def batch_end(hook):
            return lambda done: hook(done - 1, dict(metric_tensors(self.loss_tracker, self.metrics)))

        self._snapshot.take()
        try:
            logs = runner.train_epoch(
                epoch + 1, after_call=batch_end(callbacks.on_train_batch_end) if train_hooks else None
            )
            logs["grad_norm"] = float(self.grad_norm_tracker.result())
            logs["learning_rate"] = float(self.optimizer.learning_rate)
            if has_validation:
                callbacks.on_test_begin()
                val_logs = runner.validate(
                    epoch + 1, after_call=batch_end(callbacks.on_test_batch_end) if test_hooks else None
                )
                callbacks.on_test_end(val_logs)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
        except FloatingPointError as error:
            self._snapshot.restore()
            raise FloatingPointError(
                f"{error}. The weights and the optimizer state were put back as they were at the "
                f"start of epoch {epoch + 1}, their last finite values"
            ) from None
        callbacks.on_epoch_end(epoch, logs)
        return logs

    def _end_epoch(
        self, epoch: int, logs: dict[str, float], history: dict[str, list[float]],
        writer: Any, early_stopping: EarlyStopper | None, verbose: int,
    ) -> bool:
        """Record the epoch, decide whether to stop, then checkpoint; return ``True`` to stop.

        The checkpoint is written *after* early stopping has restored the best
        weights, so what is on disk is what ``fit`` returns.
        """
        for key, value in logs.items():
            history.setdefault(key, []).append(float(value))
        if writer is not None:
            write_epoch_summaries(writer, epoch, logs, self.model)
        stop = False
        if early_stopping is not None and early_stopping.update(epoch, logs, self.model.get_weights()):
            best = early_stopping.restore_best(self.model)
            if verbose:
                print(f"early stop after epoch {epoch + 1}; restored epoch {best + 1}")
            stop = True
        if self._checkpoints is not None:
            self._checkpoints.save(epoch, history, early_stopping)
        return stop or bool(self.model.stop_training)

    def fit(
        self,
        train_data: Any,
        *,
        epochs: int,
        batch_size: int | None = None,
        shuffle_seed: int | None = None,
        validation_data: Any = None,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        early_stopping: EarlyStopper | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        max_checkpoints: int = 3,
        tensorboard_dir: str | Path | None = None,
        verbose: int = 0,
    ) -> dict[str, list[float]]:
        """Train until ``epochs`` epochs are done in all (counting resumed ones) or early stopping.

        ``train_data``: a tuple of arrays ``(x, y[, sample_weight])`` with
        ``batch_size`` (shuffled each epoch when ``shuffle_seed`` is given), or a
        batched ``tf.data.Dataset`` (shuffled, if at all, with a seed, in the
        pipeline).  Returns the history of the whole run, resumed epochs included.

        With ``checkpoint_dir``, a checkpoint is saved after every epoch, with
        the run's fingerprint beside it.  A missing or empty folder starts a
        fresh run.  A folder that holds checkpoints is continued only with
        ``resume=True`` and only by the same run (same model shapes, optimizer
        and its settings, loss, batch size, data order, clipping); anything
        else, and a corrupt or unwritable folder, raises
        :class:`CheckpointError` before training.  A run that is already
        finished trains nothing and returns its history.  TensorBoard logs go
        to a subfolder ``run-N`` of ``tensorboard_dir`` of their own
        (:attr:`log_dir`), the same one when a run resumes.

        No step's loss is read on the host: a non-finite loss is noticed inside
        the compiled step and raised as ``FloatingPointError``, with its epoch
        and step, at the end of that epoch (before its checkpoint is saved,
        and with the weights put back to the start of the epoch); a
        non-finite validation loss likewise.  Batch hooks run only when a
        callback (or the progress bar) has one; Keras then turns the logs into
        floats at every step, as in ``fit()``.  The callbacks' ``on_train_end``
        runs, and the log writer is closed, however the run ends.
        """
        epochs = check_positive_int(epochs, "epochs")
        self._check_fit_arguments(
            train_data, shuffle_seed, callbacks, early_stopping, checkpoint_dir, max_checkpoints,
            tensorboard_dir, verbose, resume,
        )
        check_data_for_model(self.model, train_data, self.loss_fn, batch_size)
        if validation_data is not None:
            check_data_for_model(self.model, validation_data, self.loss_fn, batch_size, "validation_data")
        self._build(train_data, batch_size)
        fingerprint = run_fingerprint(
            self.model, self._optimizer_settings, self.loss_fn, batch_size=batch_size,
            shuffle_seed=shuffle_seed, train_data=train_data, **self._clipping,
        )
        start_epoch, history = self._open_checkpoints(
            checkpoint_dir, fingerprint, resume, early_stopping, max_checkpoints, verbose
        )
        self.start_epoch = start_epoch
        check_finite_weights(self.model)
        if start_epoch and isinstance(train_data, tf.data.Dataset):
            data_order.replay_epochs(train_data, start_epoch)
        stopped = early_stopping is not None and early_stopping.stopped_epoch is not None
        if stopped or start_epoch >= epochs:
            if verbose:
                print(f"this run is already finished after epoch {start_epoch}")
            return history
        self.log_dir = self._open_log_dir(tensorboard_dir)
        callback_list, train_hooks, test_hooks = self._callback_list(callbacks, epochs, verbose)
        feed = None
        if not isinstance(train_data, tf.data.Dataset):
            arrays = checked_arrays(train_data, batch_size)
            feed = ArrayFeed(arrays, batch_size, shuffled=shuffle_seed is not None)
        runner = EpochRunner(
            self.train_body, self.test_body, self.loss_tracker, self.metrics, train_data, batch_size,
            validation_data=validation_data, feed=feed, watch=self.watch, trackers=[self.grad_norm_tracker],
            before_train_call=callback_list.on_train_batch_begin if train_hooks else None,
            before_test_call=callback_list.on_test_batch_begin if test_hooks else None,
            test_per_call=1 if test_hooks else "epoch",
        )
        callback_list.set_params({"verbose": verbose, "epochs": epochs, "steps": runner.steps})
        writer = tf.summary.create_file_writer(str(self.log_dir)) if self.log_dir else None
        logs: dict[str, float] = {}
        try:
            callback_list.on_train_begin()
            for epoch in range(start_epoch, epochs):
                self._epoch_order(feed, shuffle_seed, epoch)
                if isinstance(train_data, tf.data.Dataset):
                    data_order.count_epoch(train_data)
                logs = self._train_one_epoch(
                    runner, epoch, callback_list, train_hooks, test_hooks, validation_data is not None
                )
                if self._end_epoch(epoch, logs, history, writer, early_stopping, verbose):
                    break
        finally:
            try:
                callback_list.on_train_end(logs)
            finally:
                if writer is not None:
                    writer.close()
        return history
