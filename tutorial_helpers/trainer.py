"""Chapter 7: a trainer you can trust.

:class:`Trainer` is the hand-written loop of Chapter 2 grown into what real
training needs, each part tested:

* compiled train and validation steps (from :mod:`tutorial_helpers.loops`),
  metrics, a per-epoch history, gradient clipping, any learning-rate schedule,
  and the global gradient norm and learning rate logged every epoch;
* early stopping with the best weights restored from memory
  (:class:`~tutorial_helpers.early_stopping.EarlyStopper`);
* checkpoints with ``tf.train.Checkpoint`` + ``CheckpointManager`` holding the
  model, the optimizer, the epoch and the shuffling seed, so an interrupted run
  resumes to exactly the weights of an uninterrupted one;
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

from tutorial_helpers import loops, steps
from tutorial_helpers.early_stopping import EarlyStopper
from tutorial_helpers.feeds import ArrayFeed, LossWatch
from tutorial_helpers.summaries import write_epoch_summaries
from tutorial_helpers.validation import check_positive_int


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
    """

    def __init__(
        self,
        model: keras.Model,
        *,
        optimizer: keras.optimizers.Optimizer,
        loss_fn: loops.LossFn,
        metrics: Sequence[keras.metrics.Metric] = (),
        global_clipnorm: float | None = None,
        clipnorm: float | None = None,
    ) -> None:
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            raise TypeError(
                f"optimizer must be a keras.optimizers.Optimizer, got {type(optimizer).__name__}"
            )
        self.model, self.optimizer, self.loss_fn = model, optimizer, loss_fn
        self.metrics = list(metrics)
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

    # ----------------------------------------------------------------- data
    @staticmethod
    def _first_batch(train_data: Any, batch_size: int | None) -> tuple:
        """A first batch, to build the model with; checks the data as ``loops.train`` does."""
        if isinstance(train_data, tf.data.Dataset):
            first = next(iter(loops.as_dataset(train_data, batch_size)), None)
            if first is None:
                raise ValueError("train_data yielded no batches")
            return first
        return tuple(a[:1] for a in loops.checked_arrays(train_data, batch_size))

    @staticmethod
    def _epoch_order(feed: ArrayFeed | None, shuffle_seed: int | None, epoch: int) -> None:
        """Arrays are shuffled with a permutation that depends only on ``(shuffle_seed, epoch)``,
        so a resumed run sees the same order."""
        if feed is not None and shuffle_seed is not None:
            feed.set_order(np.random.default_rng([shuffle_seed, epoch]).permutation(feed.size))

    # ---------------------------------------------------------- checkpoints
    def _checkpoint(self, shuffle_seed: int | None) -> tf.train.Checkpoint:
        # `model.variables` is listed explicitly: it includes the dropout layers'
        # random-generator state, which `model=` alone does not save.
        return tf.train.Checkpoint(
            model=self.model,
            optimizer=self.optimizer,
            model_variables=list(self.model.variables),
            epoch=tf.Variable(0, dtype=tf.int64),
            shuffle_seed=tf.Variable(-1 if shuffle_seed is None else shuffle_seed, dtype=tf.int64),
        )

    def _build(self, first_batch: tuple) -> None:
        """Create the model's and optimizer's variables, so a checkpoint can fill them."""
        if not self.model.built:
            self.model(first_batch[0])
        if not self.optimizer.built:
            self.optimizer.build(self.model.trainable_variables)

    def _restore(self, checkpoint: tf.train.Checkpoint, directory: Path, shuffle_seed: int | None) -> int:
        """Restore the latest checkpoint in ``directory``; return the number of epochs done (0: fresh)."""
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

    # ------------------------------------------------------------ the loop
    def _validate(self, validate: Any, callbacks: keras.callbacks.CallbackList, hooks: bool) -> dict:
        loops.reset_metrics(self.loss_tracker, self.metrics)
        callbacks.on_test_begin()
        for done in validate():
            if hooks:  # one step per call: ``done`` steps are done
                callbacks.on_test_batch_end(
                    done - 1, dict(loops.metric_tensors(self.loss_tracker, self.metrics))
                )
        logs = loops.metric_results(self.loss_tracker, self.metrics)
        callbacks.on_test_end(logs)
        return logs

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
        and step, at the end of that epoch (before its checkpoint is saved).
        Batch hooks run only when a callback (or the progress bar) has one;
        Keras then turns the logs into floats at every step, as in ``fit()``.
        """
        epochs = check_positive_int(epochs, "epochs")
        if shuffle_seed is not None and isinstance(train_data, tf.data.Dataset):
            raise ValueError("shuffle_seed works on arrays; shuffle a tf.data.Dataset in the pipeline")
        first = self._first_batch(train_data, batch_size)
        if validation_data is not None:
            loops.as_dataset(validation_data, batch_size, name="validation_data")
        self._build(first)

        start_epoch, manager, checkpoint = 0, None, None
        if checkpoint_dir is not None:
            directory = Path(checkpoint_dir)
            checkpoint = self._checkpoint(shuffle_seed)
            start_epoch = self._restore(checkpoint, directory, shuffle_seed)
            self.start_epoch = start_epoch
            manager = tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=max_checkpoints)
            if verbose:
                print(f"resuming after epoch {start_epoch}" if start_epoch else "starting fresh")
        writer = tf.summary.create_file_writer(str(tensorboard_dir)) if tensorboard_dir else None

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
        feed = None
        if not isinstance(train_data, tf.data.Dataset):
            arrays = loops.checked_arrays(train_data, batch_size)
            feed = ArrayFeed(arrays, batch_size, shuffled=shuffle_seed is not None)
        run_epoch, steps = loops.epoch_calls(
            self.train_body, train_data, batch_size, per_call=1, watch=self.watch, feed=feed,
            before_call=callback_list.on_train_batch_begin if train_hooks else None,
        )
        callback_list.set_params({"verbose": verbose, "epochs": epochs, "steps": steps})
        validate = None
        if validation_data is not None:
            validate, _ = loops.epoch_calls(
                self.test_body, validation_data, batch_size, per_call=1 if test_hooks else "epoch",
                watch=LossWatch(), name="validation_data",
                before_call=callback_list.on_test_batch_begin if test_hooks else None,
            )
        history: dict[str, list[float]] = {}
        logs: dict[str, float] = {}
        callback_list.on_train_begin()
        for epoch in range(start_epoch, epochs):
            loops.reset_metrics(self.loss_tracker, self.metrics)
            self.grad_norm_tracker.reset_state()
            callback_list.on_epoch_begin(epoch)
            self._epoch_order(feed, shuffle_seed, epoch)
            for done in run_epoch():
                if train_hooks:
                    callback_list.on_train_batch_end(
                        done - 1, dict(loops.metric_tensors(self.loss_tracker, self.metrics))
                    )
            self.watch.check(epoch + 1)  # the first read of the epoch on the host
            logs = loops.metric_results(self.loss_tracker, self.metrics)
            logs["grad_norm"] = float(self.grad_norm_tracker.result())
            logs["learning_rate"] = float(self.optimizer.learning_rate)
            if validate is not None:
                val_logs = self._validate(validate, callback_list, test_hooks)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            callback_list.on_epoch_end(epoch, logs)
            for key, value in logs.items():
                history.setdefault(key, []).append(float(value))
            if writer is not None:
                write_epoch_summaries(writer, epoch, logs, self.model)
            if manager is not None:
                checkpoint.epoch.assign(epoch + 1)
                manager.save(checkpoint_number=epoch + 1)
            if early_stopping is not None and early_stopping.update(
                epoch, logs, self.model.get_weights()
            ):
                self.model.set_weights(early_stopping.best_weights)
                if verbose:
                    best = early_stopping.best_epoch + 1
                    print(f"early stop after epoch {epoch + 1}; restored epoch {best}")
                break
            if self.model.stop_training:
                break
        callback_list.on_train_end(logs)
        if writer is not None:
            writer.close()
        return history
