"""The Chapter 8 trainer: early stopping, exact resume, callbacks in fit()'s order, TensorBoard."""

from __future__ import annotations

import csv
from pathlib import Path

import keras
import numpy as np
import pytest
from trainer_setup import build, make_trainer  # tests/ is on the path under pytest

from tutorial_helpers import data, loops
from tutorial_helpers.callbacks import EpochTimer, HookRecorder
from tutorial_helpers.checkpoints import RunCheckpoints, latest_checkpoint
from tutorial_helpers.compare import max_weight_difference
from tutorial_helpers.early_stopping import EarlyStopper
from tutorial_helpers.summaries import read_scalars
from tutorial_helpers.trainer import CheckpointError, Trainer


# ------------------------------------------------------------ early stopping
@pytest.mark.parametrize(
    ("values", "patience", "min_delta", "stop_at", "best_at"),
    [
        ([5, 4, 3, 3.5, 3.2, 3.1, 2.0], 3, 0.0, 5, 2),   # 3 epochs without beating 3
        ([5, 4, 3, 2.95, 2.9, 2.85, 2.8], 2, 0.1, 4, 2),  # improvements smaller than min_delta
        ([5, 4, 3, 2, 1], 2, 0.0, None, 4),                 # always improving: never stops
        ([1, np.nan, np.nan], 2, 0.0, 2, 0),                # NaN never counts as better
    ],
)
def test_early_stopper_on_crafted_sequences(values, patience, min_delta, stop_at, best_at) -> None:
    stopper = EarlyStopper("val_loss", patience=patience, min_delta=min_delta)
    stopped = None
    for epoch, value in enumerate(values):
        if stopper.update(epoch, {"val_loss": value}, [np.full(2, epoch, dtype=np.float32)]):
            stopped = epoch
            break
    assert stopped == stop_at
    assert stopper.best_epoch == best_at
    np.testing.assert_array_equal(stopper.best_weights[0], np.full(2, best_at))


def test_early_stopper_checks_its_arguments_and_the_monitored_key() -> None:
    with pytest.raises(ValueError, match="patience"):
        EarlyStopper(patience=0)
    with pytest.raises(ValueError, match="mode"):
        EarlyStopper(mode="lowest")
    with pytest.raises(KeyError, match="val_loss"):
        EarlyStopper().update(0, {"loss": 1.0}, [])


def test_trainer_stops_early_and_restores_the_best_epochs_weights(regression) -> None:
    (x, y), (x_val, y_val) = regression
    model = build()
    snapshots: list[list[np.ndarray]] = []
    keep = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: snapshots.append(model.get_weights()))
    stopper = EarlyStopper("val_loss", patience=2, min_delta=0.05)  # crude: stops after a few epochs
    history = make_trainer(model).fit((x, y), batch_size=32, epochs=50, validation_data=(x_val, y_val),
                                      callbacks=[keep], early_stopping=stopper)
    epochs_run = len(history["val_loss"])
    assert epochs_run < 50 and stopper.stopped_epoch == epochs_run - 1
    best = stopper.best_epoch
    assert best == epochs_run - 1 - 2  # patience 2: the best epoch is two before the last
    assert history["val_loss"][best] == pytest.approx(stopper.best)
    # no later epoch beat it by more than min_delta, and it beat every earlier one
    assert min(history["val_loss"][best + 1 :]) >= stopper.best - 0.05
    assert stopper.best == min(history["val_loss"][: best + 1])
    for restored, saved in zip(model.get_weights(), snapshots[best], strict=True):
        np.testing.assert_array_equal(restored, saved)


# --------------------------------------------------------- checkpoint/resume
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_interrupted_and_resumed_run_equals_uninterrupted_run(regression, tmp_path, dropout) -> None:
    (x, y), (x_val, y_val) = regression
    kwargs = dict(batch_size=32, shuffle_seed=7, validation_data=(x_val, y_val))
    straight = build(dropout=dropout)
    straight_history = make_trainer(straight).fit((x, y), epochs=6, **kwargs)

    first = build(dropout=dropout)
    make_trainer(first).fit((x, y), epochs=3, checkpoint_dir=tmp_path, **kwargs)  # "interrupted"
    keras.utils.set_random_seed(999)  # the new process's state must not matter
    resumed = build(seed=123, dropout=dropout)  # different initial weights: all must come from disk
    resumed_trainer = make_trainer(resumed)
    resumed_history = resumed_trainer.fit((x, y), epochs=6, checkpoint_dir=tmp_path, resume=True, **kwargs)
    assert resumed_trainer.start_epoch == 3

    assert max_weight_difference(straight, resumed) == 0.0
    assert resumed_history == straight_history  # the whole run's history, the saved epochs included


def _stopping_run(regression, **fit_kwargs):
    """A run that stops early after a few epochs (patience 2, a coarse min_delta)."""
    (x, y), (x_val, y_val) = regression
    model = build()
    stopper = EarlyStopper("val_loss", patience=2, min_delta=0.05)
    history = make_trainer(model).fit((x, y), batch_size=32, shuffle_seed=7, early_stopping=stopper,
                                      validation_data=(x_val, y_val), **fit_kwargs)
    return model, stopper, history


def test_the_checkpoint_on_disk_is_what_an_early_stopped_fit_returns(regression, tmp_path) -> None:
    model, stopper, history = _stopping_run(regression, epochs=50, checkpoint_dir=tmp_path)
    assert stopper.stopped_epoch is not None and stopper.best_epoch < stopper.stopped_epoch
    reloaded = build(seed=5)
    restored = make_trainer(reloaded)
    restored._build(regression[0], 32)
    checkpoints = RunCheckpoints(tmp_path, reloaded, restored.optimizer,
                                 EarlyStopper("val_loss", patience=2, min_delta=0.05), max_to_keep=3)
    assert checkpoints.restore(latest_checkpoint(tmp_path)) == (len(history["loss"]), history)
    assert max_weight_difference(reloaded, model) == 0.0  # the best epoch's weights, not the last


def test_resuming_a_run_with_early_stopping_equals_an_uninterrupted_one(regression, tmp_path) -> None:
    straight, straight_stopper, straight_history = _stopping_run(regression, epochs=50)
    stopped_after = len(straight_history["loss"])
    assert stopped_after >= 4, "the run must stop late enough to be interrupted before it stops"
    interrupt_at = stopped_after - 1  # one epoch before it stops: the stopper is already waiting
    _stopping_run(regression, epochs=interrupt_at, checkpoint_dir=tmp_path)
    keras.utils.set_random_seed(999)
    (x, y), (x_val, y_val) = regression
    resumed = build(seed=123)
    stopper = EarlyStopper("val_loss", patience=2, min_delta=0.05)
    history = make_trainer(resumed).fit((x, y), batch_size=32, shuffle_seed=7, epochs=50,
                                        validation_data=(x_val, y_val), early_stopping=stopper,
                                        checkpoint_dir=tmp_path, resume=True)
    assert len(history["loss"]) == stopped_after  # it stops at the same epoch
    assert (stopper.best_epoch, stopper.stopped_epoch) == (straight_stopper.best_epoch,
                                                           straight_stopper.stopped_epoch)
    assert max_weight_difference(straight, resumed) == 0.0
    assert history["val_loss"] == straight_history["val_loss"]
    # and resuming a finished run trains nothing more, and returns its history
    again = make_trainer(build(seed=3)).fit((x, y), batch_size=32, shuffle_seed=7, epochs=50,
                                            validation_data=(x_val, y_val), early_stopping=stopper,
                                            checkpoint_dir=tmp_path, resume=True)
    assert again == history


def test_a_reused_stopper_starts_over_in_a_new_run(regression) -> None:
    (x, y), (x_val, y_val) = regression
    stopper = EarlyStopper("val_loss", patience=2, min_delta=0.05)
    kwargs = dict(batch_size=32, epochs=40, validation_data=(x_val, y_val), early_stopping=stopper)
    first = make_trainer(build(seed=1)).fit((x, y), **kwargs)
    second_model = build(seed=2)
    second = make_trainer(second_model).fit((x, y), **kwargs)
    alone_model = build(seed=2)
    alone = make_trainer(alone_model).fit(
        (x, y), **{**kwargs, "early_stopping": EarlyStopper("val_loss", patience=2, min_delta=0.05)}
    )
    assert len(first["loss"]) > 1 and second == alone
    assert max_weight_difference(second_model, alone_model) == 0.0


def test_nan_validation_loss_stops_with_its_epoch(regression, tmp_path) -> None:
    (x, y), (x_val, y_val) = regression
    model = build()
    bad_val = x_val.copy()
    bad_val[40] = np.nan  # validation batch 2 of 32
    with pytest.raises(FloatingPointError, match="validation loss became nan at epoch 1, step 2"):
        make_trainer(model).fit((x, y), batch_size=32, epochs=3, validation_data=(bad_val, y_val),
                                early_stopping=EarlyStopper(), checkpoint_dir=tmp_path)
    assert not list(tmp_path.glob("ckpt-*"))  # the epoch that produced it is not checkpointed


class AlwaysNaN(keras.metrics.Metric):
    """A metric whose value is never a number (a broken metric a reader wrote)."""

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        pass

    def result(self):
        return keras.ops.convert_to_tensor(float("nan"))


def test_a_monitored_value_that_never_improves_is_a_clear_error(regression) -> None:
    (x, y), _ = regression
    trainer = Trainer(build(), optimizer=keras.optimizers.Adam(0.01),
                      loss_fn=keras.losses.MeanSquaredError(), metrics=[AlwaysNaN(name="score")])
    with pytest.raises(FloatingPointError, match=r"monitored .score., which never had a finite"):
        trainer.fit((x, y), batch_size=32, epochs=5, early_stopping=EarlyStopper("score", patience=2))


def test_missing_or_empty_checkpoint_dir_starts_fresh(regression, tmp_path, capsys) -> None:
    (x, y), _ = regression
    for directory in (tmp_path / "missing", tmp_path):
        history = make_trainer(build()).fit((x, y), batch_size=64, epochs=1,
                                            checkpoint_dir=directory, verbose=0)
        assert len(history["loss"]) == 1
    assert (tmp_path / "missing" / "checkpoint").exists()


def test_corrupt_checkpoint_dir_is_an_error(regression, tmp_path) -> None:
    (x, y), _ = regression
    make_trainer(build()).fit((x, y), batch_size=64, epochs=1, checkpoint_dir=tmp_path)
    (tmp_path / "checkpoint").unlink()  # the index is gone, the data files remain
    with pytest.raises(CheckpointError, match="corrupt or incomplete"):
        make_trainer(build()).fit((x, y), batch_size=64, epochs=2, checkpoint_dir=tmp_path)
    other = tmp_path / "garbled"
    make_trainer(build()).fit((x, y), batch_size=64, epochs=1, checkpoint_dir=other)
    for data_file in other.glob("ckpt-1.data-*"):
        data_file.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot restore"):
        make_trainer(build()).fit((x, y), batch_size=64, epochs=2, checkpoint_dir=other, resume=True)


def test_checkpoint_from_another_run_is_refused(regression, tmp_path) -> None:
    (x, y), _ = regression
    make_trainer(build()).fit((x, y), batch_size=64, epochs=1, shuffle_seed=1, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="shuffle_seed: saved 1, now 2"):
        make_trainer(build()).fit((x, y), batch_size=64, epochs=2, shuffle_seed=2, checkpoint_dir=tmp_path,
                                  resume=True)
    wider = keras.Sequential([keras.Input((3,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(1)])
    with pytest.raises(CheckpointError, match=r"model: saved \['Sequential', \[3, 16\]"):
        make_trainer(wider).fit((x, y), batch_size=64, epochs=2, shuffle_seed=1, checkpoint_dir=tmp_path,
                                resume=True)


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(regression, tmp_path) -> None:
    (x, y), _ = regression
    model = build()
    trainer = make_trainer(model)
    first = trainer.fit((x, y), batch_size=30, epochs=2, checkpoint_dir=tmp_path)
    good = model.get_weights()
    y_bad = y.copy()
    y_bad[95] = np.nan  # batch 4 (samples 90..119) of every epoch
    with pytest.raises(FloatingPointError, match=r"epoch 3, step 4"):
        trainer.fit((x, y_bad), batch_size=30, epochs=5, checkpoint_dir=tmp_path, resume=True)
    fresh = build(seed=5)
    history = make_trainer(fresh).fit((x, y), batch_size=30, epochs=2, checkpoint_dir=tmp_path, resume=True)
    assert history == first  # 2 epochs were already done: nothing to train, their history returned
    for restored, saved in zip(fresh.get_weights(), good, strict=True):
        np.testing.assert_array_equal(restored, saved)


# -------------------------------------------------------------- callbacks
def test_callback_hooks_are_called_in_fits_order(regression) -> None:
    (x, y), (x_val, y_val) = regression
    in_fit, in_trainer = HookRecorder(), HookRecorder()
    reference = build()
    reference.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    reference.fit(x, y, batch_size=64, epochs=2, shuffle=False, validation_data=(x_val, y_val),
                  callbacks=[in_fit], verbose=0)
    make_trainer(build()).fit((x, y), batch_size=64, epochs=2, validation_data=(x_val, y_val),
                              callbacks=[in_trainer])
    assert in_trainer.calls == in_fit.calls
    assert in_fit.calls[:3] == [("on_train_begin", None), ("on_epoch_begin", 0),
                                ("on_train_batch_begin", 0)]


def test_keras_callbacks_work_from_the_custom_loop(regression, tmp_path) -> None:
    (x, y), (x_val, y_val) = regression
    model = build()
    optimizer = keras.optimizers.SGD(0.01)
    trainer = Trainer(model, optimizer=optimizer, loss_fn=keras.losses.MeanSquaredError())
    reduce = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=100.0)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, min_delta=100.0)
    timer = EpochTimer()
    log_file = tmp_path / "log.csv"
    history = trainer.fit((x, y), batch_size=64, epochs=20, validation_data=(x_val, y_val),
                          callbacks=[reduce, stop, timer, keras.callbacks.CSVLogger(str(log_file))])
    # min_delta=100: after the first epoch (better than "no value yet"), no epoch improves
    assert len(history["loss"]) == 4  # EarlyStopping(patience=3) set model.stop_training
    # the rate each epoch trained with: halved at the end of epochs 2, 3 and 4
    assert history["learning_rate"] == pytest.approx([0.01, 0.01, 0.005, 0.0025])
    assert float(optimizer.learning_rate) == pytest.approx(0.00125)
    assert len(timer.seconds) == 4 and all(s > 0 for s in timer.seconds)
    rows = list(csv.DictReader(log_file.open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert float(rows[-1]["val_loss"]) == pytest.approx(history["val_loss"][-1])


# ------------------------------------------------------------ TensorBoard
def test_tensorboard_event_files_hold_the_logged_scalars(regression, tmp_path) -> None:
    (x, y), (x_val, y_val) = regression
    trainer = make_trainer(build())
    history = trainer.fit((x, y), batch_size=32, epochs=3, validation_data=(x_val, y_val),
                          tensorboard_dir=tmp_path / "tb")
    assert trainer.log_dir == tmp_path / "tb" / "run-1"
    scalars = read_scalars(trainer.log_dir)
    assert set(scalars) == {"loss", "val_loss", "grad_norm", "learning_rate"}
    for tag, points in scalars.items():
        assert [step for step, _ in points] == [0, 1, 2]
        np.testing.assert_allclose([v for _, v in points], history[tag], rtol=1e-6)
    assert history["grad_norm"][0] > 0


def test_reading_an_empty_log_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no TensorBoard event files"):
        read_scalars(tmp_path)


# ---------------------------------------------------------- regularization
def test_the_loop_adds_the_penalties_to_the_loss() -> None:
    """Forgetting model.losses would make the reported loss the data loss alone."""
    x, y = data.make_regression_data(n=64, seed=0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)),
                              keras.layers.Dense(4, kernel_regularizer=keras.regularizers.L2(0.1)),
                              keras.layers.Dense(1)])
    data_loss = float(keras.losses.MeanSquaredError()(y, model(x)))
    penalty = 0.1 * float(np.sum(model.layers[0].kernel.numpy() ** 2))
    assert penalty > 0.01
    for run in (
        lambda: loops.train(model, (x, y), batch_size=64, optimizer=keras.optimizers.SGD(0.0),
                            loss_fn=keras.losses.MeanSquaredError(), epochs=1, verbose=0),
        lambda: Trainer(model, optimizer=keras.optimizers.SGD(0.0),
                        loss_fn=keras.losses.MeanSquaredError()).fit((x, y), batch_size=64, epochs=1),
    ):
        assert run()["loss"][0] == pytest.approx(data_loss + penalty, rel=1e-5)


@pytest.mark.parametrize("clip", [None, 1.0])
def test_trainer_equals_fit_with_a_schedule_and_clipping(regression, clip) -> None:
    """Bit for bit with a schedule.  With global clipping, to float32 rounding only: Keras clips
    inside the optimizer with its own global-norm formula (Keras's ``ops`` summed in another
    order than ``tf.clip_by_global_norm``), which moves the last bit of some weights (3e-8 here)."""
    (x, y), (x_val, y_val) = regression
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=5, decay_rate=0.7)
    reference = build()
    reference.compile(optimizer=keras.optimizers.SGD(schedule, global_clipnorm=clip), loss="mse")
    fitted = reference.fit(x, y, batch_size=32, epochs=3, shuffle=False, validation_data=(x_val, y_val),
                           verbose=0).history
    model = build()
    history = Trainer(model, optimizer=keras.optimizers.SGD(schedule), global_clipnorm=clip,
                      loss_fn=keras.losses.MeanSquaredError()).fit(
        (x, y), batch_size=32, epochs=3, validation_data=(x_val, y_val))
    if clip is None:
        assert max_weight_difference(model, reference) == 0.0
        for key in ("loss", "val_loss"):
            assert history[key] == fitted[key], key
    else:
        assert max_weight_difference(model, reference) < 1e-6
        for key in ("loss", "val_loss"):
            np.testing.assert_allclose(history[key], fitted[key], rtol=1e-6, err_msg=key)


def test_trainer_rejects_bad_arguments(regression) -> None:
    (x, y), _ = regression
    with pytest.raises(TypeError, match="optimizer"):
        Trainer(build(), optimizer="adam", loss_fn=keras.losses.MeanSquaredError())
    with pytest.raises(ValueError, match="epochs"):
        make_trainer(build()).fit((x, y), batch_size=32, epochs=0)
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    with pytest.raises(ValueError, match="shuffle_seed"):
        make_trainer(build()).fit(dataset, epochs=1, shuffle_seed=1)


# ------------------------------------------------------------ Chapter 8's loop, written out
def chapter_7_loop():
    """``train_with_callbacks`` exactly as Chapter 8 writes it, executed from the notebook."""
    import json

    import tensorflow as tf

    notebook = Path(__file__).resolve().parents[1] / "book" / "08_a_trainer_you_can_trust.ipynb"
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    source = next("".join(c["source"]) for c in cells
                  if c["cell_type"] == "code" and "def train_with_callbacks(" in "".join(c["source"]))
    namespace = {"keras": keras, "tf": tf, "loops": loops}
    exec(compile(source, str(notebook), "exec"), namespace)
    return namespace["train_with_callbacks"]


@pytest.mark.parametrize("patience", [None, 2])
def test_chapter_7_loop_and_the_trainer_give_the_same_history(regression, tmp_path, patience) -> None:
    import tensorflow as tf

    (x, y), (xv, yv) = regression
    train_with_callbacks = chapter_7_loop()
    written_model, recorder = build(dropout=0.2), HookRecorder()
    written = train_with_callbacks(
        written_model, keras.optimizers.Adam(0.05), keras.losses.MeanSquaredError(),
        [keras.metrics.MeanAbsoluteError(name="mae")],
        tf.data.Dataset.from_tensor_slices((x, y)).batch(32),
        tf.data.Dataset.from_tensor_slices((xv, yv)).batch(32),
        epochs=15, callbacks=[recorder], patience=patience, log_dir=tmp_path / "written", global_clipnorm=1.0,
    )
    trainer_model = build(dropout=0.2)
    expected = make_trainer(trainer_model, keras.optimizers.Adam(0.05),
                            metrics=[keras.metrics.MeanAbsoluteError(name="mae")], global_clipnorm=1.0).fit(
        (x, y), batch_size=32, epochs=15, validation_data=(xv, yv),
        early_stopping=None if patience is None else EarlyStopper("val_loss", patience=patience),
        tensorboard_dir=tmp_path / "trainer",
    )
    assert written == expected
    assert max_weight_difference(written_model, trainer_model) == 0.0
    if patience is not None:
        assert len(written["loss"]) < 15, "the run should have stopped early"
    logged = read_scalars(tmp_path / "written")  # {tag: [(step, value), ...]}
    assert logged == {key: list(enumerate(values)) for key, values in written.items()}
    hooks = [hook for hook, _ in recorder.calls]
    assert hooks[0] == "on_train_begin" and hooks[-1] == "on_train_end"
    assert hooks.count("on_epoch_end") == len(written["loss"])
