"""Chapter 7: a trainer you can trust.

:class:`Trainer` is the hand-written loop of Chapter 2 grown into what real
training needs, each part tested:

* compiled train and validation steps, run epoch by epoch by the same
  :class:`~tutorial_helpers.epochs.EpochRunner` as ``loops.train``,
  metrics, a per-epoch history, gradient clipping, any learning-rate schedule,
  and the global gradient norm and learning rate logged every epoch;
* early stopping with the best weights restored from memory
  (:class:`~tutorial_helpers.early_stopping.EarlyStopper`);
* checkpoints with ``tf.train.Checkpoint`` + ``CheckpointManager`` holding the
  model, the optimizer, the epoch, the shuffling seed and the early stopper's
  state, so an interrupted run resumes to exactly the weights of an
  uninterrupted one, early stopping included;
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

from tutorial_helpers import steps
from tutorial_helpers.early_stopping import EarlyStopper, StopperState
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
    check_loss_fn,
    check_metrics,
    check_optimizer,
    check_positive_int,
)


def _has_hooks(callback: keras.callbacks.Callback, phase: str) -> bool:
    """Whether ``callback`` has its own batch hook of ``phase`` (``"train"`` or ``"test"``).

    Keras marks the base class's empty hooks with ``_is_default``; anything
    else (a subclass's method, an attribute set on the instance) is a hook.
    """
    names = [f"on_{phase}_batch_begin", f"on_{phase}_batch_end"]
    if phase == "train":
        names += ["on_batch_begin", "on_batch_end"]
    return any(not getattr(getattr(callback, name), "_is_default", False) for name in names)


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be resumed from (corrupt, or from another run)."""


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
    """

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
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
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
        self._manager: tf.train.CheckpointManager | None = None
        self._checkpoint: tf.train.Checkpoint | None = None
        self._stopper_state: StopperState | None = None

    # ------------------------------------------------------------ checks
    @staticmethod
    def _check_fit_arguments(
        train_data: Any, shuffle_seed: Any, callbacks: Any, early_stopping: Any,
        checkpoint_dir: Any, max_checkpoints: Any, tensorboard_dir: Any, verbose: Any,
    ) -> None:
        """Everything about ``fit``'s arguments that can be checked before anything is built."""
        if shuffle_seed is not None:
            if isinstance(train_data, tf.data.Dataset):
                raise ValueError("shuffle_seed works on arrays; shuffle a tf.data.Dataset in the pipeline")
            if isinstance(shuffle_seed, bool) or not isinstance(shuffle_seed, (int, np.integer)) \
                    or shuffle_seed < 0:
                raise TypeError(f"shuffle_seed must be None or an int >= 0, got {shuffle_seed!r}")
        if isinstance(callbacks, keras.callbacks.Callback) or not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks must be a list of keras.callbacks.Callback, got {callbacks!r}")
        for callback in callbacks:
            if not isinstance(callback, keras.callbacks.Callback):
                raise TypeError(f"callbacks must hold keras.callbacks.Callback objects, got {callback!r}")
        if early_stopping is not None and not isinstance(early_stopping, EarlyStopper):
            raise TypeError(
                f"early_stopping must be an EarlyStopper, got {type(early_stopping).__name__} "
                "(a keras.callbacks.EarlyStopping goes in callbacks=)"
            )
        for name, value in (("checkpoint_dir", checkpoint_dir), ("tensorboard_dir", tensorboard_dir)):
            if value is not None and not isinstance(value, (str, Path)):
                raise TypeError(f"{name} must be a path (str or pathlib.Path), got {type(value).__name__}")
        check_positive_int(max_checkpoints, "max_checkpoints")
        if verbose not in (0, 1) or isinstance(verbose, bool):
            raise ValueError(f"verbose must be 0 or 1, got {verbose!r}")

    # ----------------------------------------------------------------- data
    def _build(self, train_data: Any, batch_size: int | None) -> None:
        """Create the model's and optimizer's variables, so a checkpoint can fill them.

        The data check has already built the model from an all-zero sample
        where the input shape is known; otherwise the first batch builds it.
        """
        if not self.model.built:
            if isinstance(train_data, tf.data.Dataset):
                first = next(iter(as_dataset(train_data, batch_size)), None)
                if first is None:
                    raise ValueError("train_data yielded no batches")
            else:
                first = tuple(a[:1] for a in checked_arrays(train_data, batch_size))
            self.model(first[0])
        if not self.optimizer.built:
            self.optimizer.build(self.model.trainable_variables)

    @staticmethod
    def _epoch_order(feed: ArrayFeed | None, shuffle_seed: int | None, epoch: int) -> None:
        """Arrays are shuffled with a permutation that depends only on ``(shuffle_seed, epoch)``,
        so a resumed run sees the same order."""
        if feed is not None and shuffle_seed is not None:
            feed.set_order(np.random.default_rng([shuffle_seed, epoch]).permutation(feed.size))

    # ---------------------------------------------------------- checkpoints
    def _make_checkpoint(self, shuffle_seed: int | None, early_stopping: EarlyStopper | None) -> None:
        # `model.variables` is listed explicitly: it includes the dropout layers'
        # random-generator state, which `model=` alone does not save.
        parts: dict[str, Any] = dict(
            model=self.model,
            optimizer=self.optimizer,
            model_variables=list(self.model.variables),
            epoch=tf.Variable(0, dtype=tf.int64),
            shuffle_seed=tf.Variable(-1 if shuffle_seed is None else shuffle_seed, dtype=tf.int64),
        )
        self._stopper_state = None
        if early_stopping is not None:
            self._stopper_state = StopperState(self.model.get_weights())
            parts["early_stopper"] = self._stopper_state
        self._checkpoint = tf.train.Checkpoint(**parts)

    def _restore(self, directory: Path, shuffle_seed: int | None) -> int:
        """Restore the latest checkpoint in ``directory``; return the number of epochs done (0: fresh)."""
        checkpoint = self._checkpoint
        latest = tf.train.latest_checkpoint(str(directory)) if directory.exists() else None
        if latest is None:
            leftovers = list(directory.glob("ckpt-*")) if directory.exists() else []
            if leftovers:
                raise CheckpointError(
                    f"{directory} holds checkpoint files but no readable 'checkpoint' index: "
                    "it is corrupt or incomplete; delete it or choose another directory"
                )
            return 0  # missing or empty directory: a fresh start
        wanted = -1 if shuffle_seed is None else shuffle_seed
        try:
            checkpoint.restore(latest).assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError, IndexError, KeyError) as error:
            raise CheckpointError(f"cannot restore {latest}: {error}") from error
        if int(checkpoint.shuffle_seed) != wanted:
            raise CheckpointError(
                f"{latest} was written with shuffle_seed={int(checkpoint.shuffle_seed)}, "
                f"this run asks for {shuffle_seed}: resuming would mix two runs"
            )
        return int(checkpoint.epoch)

    def _open_checkpoints(
        self, checkpoint_dir: str | Path | None, shuffle_seed: int | None,
        early_stopping: EarlyStopper | None, max_checkpoints: int, verbose: int,
    ) -> int:
        """Resume from ``checkpoint_dir`` if it holds a checkpoint; return the epochs already done."""
        self._manager = None
        if early_stopping is not None:
            early_stopping.reset()  # a stopper reused from an earlier run starts over ...
        if checkpoint_dir is None:
            return 0
        directory = Path(checkpoint_dir)
        self._make_checkpoint(shuffle_seed, early_stopping)
        start_epoch = self._restore(directory, shuffle_seed)
        if start_epoch and early_stopping is not None:
            self._stopper_state.load_into(early_stopping)  # ... unless the run it belongs to resumes
        self._manager = tf.train.CheckpointManager(
            self._checkpoint, str(directory), max_to_keep=max_checkpoints
        )
        if verbose:
            print(f"resuming after epoch {start_epoch}" if start_epoch else "starting fresh")
        return start_epoch

    def _save_checkpoint(self, epoch: int, early_stopping: EarlyStopper | None) -> None:
        if self._manager is None:
            return
        self._checkpoint.epoch.assign(epoch + 1)
        if self._stopper_state is not None:
            self._stopper_state.save_from(early_stopping)
        self._manager.save(checkpoint_number=epoch + 1)

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
        train_hooks = verbose != 0 or any(_has_hooks(c, "train") for c in callbacks)
        test_hooks = any(_has_hooks(c, "test") for c in callbacks)
        return callback_list, train_hooks, test_hooks

    # ------------------------------------------------------------ the loop
    def _train_one_epoch(
        self, runner: EpochRunner, epoch: int, callbacks: keras.callbacks.CallbackList,
        train_hooks: bool, test_hooks: bool, has_validation: bool,
    ) -> dict[str, float]:
        """Train one epoch, validate, and call the callbacks' epoch-end hooks; return the logs."""
        callbacks.on_epoch_begin(epoch)

        def batch_end(hook):
            return lambda done: hook(done - 1, dict(metric_tensors(self.loss_tracker, self.metrics)))

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
        self._save_checkpoint(epoch, early_stopping)
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
        max_checkpoints: int = 3,
        tensorboard_dir: str | Path | None = None,
        verbose: int = 0,
    ) -> dict[str, list[float]]:
        """Train until ``epochs`` epochs are done in all (counting resumed ones) or early stopping.

        ``train_data``: a tuple of arrays ``(x, y[, sample_weight])`` with
        ``batch_size`` (shuffled each epoch when ``shuffle_seed`` is given), or a
        batched ``tf.data.Dataset``.  With ``checkpoint_dir``, the run resumes
        from the latest checkpoint there and saves one after every epoch; a
        missing or empty directory starts fresh, a corrupt one or one written
        with another ``shuffle_seed`` raises :class:`CheckpointError`.
        Returns the history of the epochs run by this call.

        No step's loss is read on the host: a non-finite loss is noticed inside
        the compiled step and raised as ``FloatingPointError``, with its epoch
        and step, at the end of that epoch (before its checkpoint is saved); a
        non-finite validation loss likewise.  Batch hooks run only when a
        callback (or the progress bar) has one; Keras then turns the logs into
        floats at every step, as in ``fit()``.
        """
        epochs = check_positive_int(epochs, "epochs")
        self._check_fit_arguments(
            train_data, shuffle_seed, callbacks, early_stopping, checkpoint_dir, max_checkpoints,
            tensorboard_dir, verbose,
        )
        check_data_for_model(self.model, train_data, self.loss_fn, batch_size)
        if validation_data is not None:
            check_data_for_model(self.model, validation_data, self.loss_fn, batch_size, "validation_data")
        self._build(train_data, batch_size)
        start_epoch = self._open_checkpoints(
            checkpoint_dir, shuffle_seed, early_stopping, max_checkpoints, verbose
        )
        self.start_epoch = start_epoch
        if early_stopping is not None and early_stopping.stopped_epoch is not None:
            if verbose:
                print(f"this run already stopped early after epoch {early_stopping.stopped_epoch + 1}")
            return {}
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
        writer = tf.summary.create_file_writer(str(tensorboard_dir)) if tensorboard_dir else None
        history: dict[str, list[float]] = {}
        logs: dict[str, float] = {}
        try:
            callback_list.on_train_begin()
            for epoch in range(start_epoch, epochs):
                self._epoch_order(feed, shuffle_seed, epoch)
                logs = self._train_one_epoch(
                    runner, epoch, callback_list, train_hooks, test_hooks, validation_data is not None
                )
                if self._end_epoch(epoch, logs, history, writer, early_stopping, verbose):
                    break
            callback_list.on_train_end(logs)
        finally:
            if writer is not None:
                writer.close()
        return history
