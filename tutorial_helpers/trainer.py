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

from tutorial_helpers import loops
from tutorial_helpers.early_stopping import EarlyStopper
from tutorial_helpers.summaries import write_epoch_summaries
from tutorial_helpers.validation import check_positive_int


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
        self.train_step = loops.make_train_step(
            model, optimizer, loss_fn, self.loss_tracker, self.metrics,
            global_clipnorm=global_clipnorm, clipnorm=clipnorm,
            gradient_norm_tracker=self.grad_norm_tracker,
        )
        self.test_step = loops.make_test_step(model, loss_fn, self.loss_tracker, self.metrics)
        #: epochs already done when the last ``fit`` began (restored from a checkpoint)
        self.start_epoch = 0

    # ----------------------------------------------------------------- data
    @staticmethod
    def _epoch_batches(train_data: Any, batch_size: int | None, shuffle_seed: int | None, epoch: int):
        """The batches of one epoch.  Arrays are shuffled with a permutation that
        depends only on ``(shuffle_seed, epoch)``, so a resumed run sees the same order."""
        if isinstance(train_data, tf.data.Dataset):
            return train_data
        arrays = [np.asarray(a) for a in train_data]
        if shuffle_seed is not None:
            order = np.random.default_rng([shuffle_seed, epoch]).permutation(len(arrays[0]))
            arrays = [a[order] for a in arrays]
        return loops.as_dataset(tuple(arrays), batch_size)

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
    def _validate(self, val_ds: tf.data.Dataset, callbacks: keras.callbacks.CallbackList) -> dict:
        loops.reset_metrics(self.loss_tracker, self.metrics)
        callbacks.on_test_begin()
        for step, batch in enumerate(val_ds):
            callbacks.on_test_batch_begin(step)
            self.test_step(*batch)
            callbacks.on_test_batch_end(step, loops.metric_results(self.loss_tracker, self.metrics))
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
        """
        epochs = check_positive_int(epochs, "epochs")
        if shuffle_seed is not None and isinstance(train_data, tf.data.Dataset):
            raise ValueError("shuffle_seed works on arrays; shuffle a tf.data.Dataset in the pipeline")
        unshuffled = self._epoch_batches(train_data, batch_size, None, 0)
        first = next(iter(unshuffled), None)
        if first is None:
            raise ValueError("train_data yielded no batches")
        val_ds = None
        if validation_data is not None:
            val_ds = loops.as_dataset(validation_data, batch_size, name="validation_data")
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
        steps = int(unshuffled.cardinality())
        callback_list = keras.callbacks.CallbackList(
            list(callbacks), add_history=False, add_progbar=verbose != 0, verbose=verbose,
            epochs=epochs, steps=steps if steps > 0 else None, model=self.model,
        )
        history: dict[str, list[float]] = {}
        logs: dict[str, float] = {}
        callback_list.on_train_begin()
        for epoch in range(start_epoch, epochs):
            loops.reset_metrics(self.loss_tracker, self.metrics)
            self.grad_norm_tracker.reset_state()
            callback_list.on_epoch_begin(epoch)
            batches = self._epoch_batches(train_data, batch_size, shuffle_seed, epoch)
            for step, batch in enumerate(batches):
                callback_list.on_train_batch_begin(step)
                loops.check_finite(self.train_step(*batch), epoch + 1, step + 1)
                callback_list.on_train_batch_end(
                    step, loops.metric_results(self.loss_tracker, self.metrics)
                )
            logs = loops.metric_results(self.loss_tracker, self.metrics)
            logs["grad_norm"] = float(self.grad_norm_tracker.result())
            logs["learning_rate"] = float(self.optimizer.learning_rate)
            if val_ds is not None:
                val_logs = self._validate(val_ds, callback_list)
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
