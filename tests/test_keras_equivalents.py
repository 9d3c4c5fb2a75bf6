"""The book's own pieces against the Keras (and TensorBoard) built-ins they write out.

- ``EarlyStopper`` against ``keras.callbacks.EarlyStopping(restore_best_weights=True)``:
  the same stopping epoch and restored weights on the same sequence of values,
  and in a real run next to ``fit()``; where the two differ (a run that ends
  without stopping, a value that is NaN from the first epoch) the test pins the
  difference Chapter 8 describes.
- ``summaries.read_scalars`` against TensorBoard's own event reader
  (``EventAccumulator``) on the same log folders.
- ``metrics.BinaryF1`` against ``keras.metrics.F1Score``.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from trainer_setup import build, make_trainer

from tutorial_helpers import loops
from tutorial_helpers.early_stopping import EarlyStopper
from tutorial_helpers.metrics import BinaryF1
from tutorial_helpers.summaries import read_scalars


# ------------------------------------------------------------ early stopping
def one_weight_model() -> keras.Model:
    """A model whose single weight is set to the epoch number, so restored weights name their epoch."""
    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])


def drive_keras(values, patience, min_delta, mode) -> tuple[int | None, float, int]:
    """EarlyStopping fed ``values`` as fit() would feed it: (stopped epoch, restored weight, epochs run)."""
    model = one_weight_model()
    callback = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, min_delta=min_delta, mode=mode, restore_best_weights=True
    )
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        model.set_weights([np.full((1, 1), epoch, np.float32)])
        callback.on_epoch_end(epoch, {"val_loss": value})
        if model.stop_training:
            break
    callback.on_train_end()
    stopped = callback.stopped_epoch if model.stop_training else None
    return stopped, float(model.get_weights()[0][0, 0]), epoch + 1


def drive_book(values, patience, min_delta, mode) -> tuple[int | None, float, int]:
    """EarlyStopper fed ``values`` as the Trainer feeds it: (stopped epoch, final weight, epochs run)."""
    model = one_weight_model()
    stopper = EarlyStopper("val_loss", patience=patience, min_delta=min_delta, mode=mode)
    for epoch, value in enumerate(values):
        model.set_weights([np.full((1, 1), epoch, np.float32)])
        if stopper.update(epoch, {"val_loss": value}, model.get_weights()):
            stopper.restore_best(model)
            break
    return stopper.stopped_epoch, float(model.get_weights()[0][0, 0]), epoch + 1


def sequences() -> list[tuple[list[float], int, float, str]]:
    """Noisy, plateauing curves with ties, both modes, several patiences and min_deltas: 240 cases."""
    rng = np.random.default_rng(0)
    cases = []
    for i in range(240):
        steps = rng.choice([-0.1, -0.02, 0.0, 0.0, 0.03, 0.1], size=int(rng.integers(3, 25)))
        values = np.round(1.0 + np.cumsum(steps), 2)  # rounded: exact ties happen
        mode = "min" if i % 3 else "max"
        if mode == "max":
            values = -values
        cases.append(([float(v) for v in values], int(rng.integers(1, 5)), [0.0, 0.01, 0.05][i % 3], mode))
    return cases


def test_early_stopper_stops_and_restores_like_keras_early_stopping() -> None:
    stopped_runs = 0
    for values, patience, min_delta, mode in sequences():
        keras_stop, keras_weight, keras_epochs = drive_keras(values, patience, min_delta, mode)
        book_stop, book_weight, book_epochs = drive_book(values, patience, min_delta, mode)
        case = f"values={values} patience={patience} min_delta={min_delta} mode={mode}"
        assert book_stop == keras_stop and book_epochs == keras_epochs, case
        if book_stop is not None:  # both stopped: the same best epoch's weights are back
            stopped_runs += 1
            assert book_weight == keras_weight, case
    assert 60 < stopped_runs < 240  # both outcomes are exercised


def test_a_run_that_never_stops_is_where_the_two_differ() -> None:
    """Keras restores the best weights at the end of training even without stopping; EarlyStopper
    restores only when it stops, so the Trainer keeps the last epoch's (Chapter 8 says so)."""
    values = [1.0, 0.5, 0.6, 0.7]  # best at epoch 1, patience 3 never runs out
    assert drive_keras(values, 3, 0.0, "min") == (None, 1.0, 4)
    assert drive_book(values, 3, 0.0, "min") == (None, 3.0, 4)


def test_a_value_nan_from_the_start_is_where_the_two_differ() -> None:
    """Keras keeps the first epoch's weights as the best even when its value is NaN, and restores
    them; EarlyStopper refuses to restore weights that never had a finite value."""
    values = [math.nan, math.nan, math.nan]
    assert drive_keras(values, 2, 0.0, "min") == (2, 0.0, 3)
    with pytest.raises(FloatingPointError, match="never had a finite value"):
        drive_book(values, 2, 0.0, "min")


def test_the_trainer_with_early_stopper_equals_fit_with_early_stopping(regression) -> None:
    (x, y), (x_val, y_val) = regression
    kwargs = {"batch_size": 32, "epochs": 60, "validation_data": (x_val, y_val)}
    reference = build(seed=2)
    reference.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.MeanSquaredError(),
                      jit_compile=False)
    callback = keras.callbacks.EarlyStopping(patience=3, min_delta=0.01, restore_best_weights=True)
    fit_history = reference.fit(x, y, shuffle=False, verbose=0, callbacks=[callback], **kwargs).history

    model = build(seed=2)
    stopper = EarlyStopper("val_loss", patience=3, min_delta=0.01)
    history = make_trainer(model).fit((x, y), early_stopping=stopper, **kwargs)

    assert len(history["loss"]) < 60  # it did stop early
    assert {key: history[key] for key in fit_history} == fit_history  # the Trainer logs grad_norm, lr too
    assert stopper.stopped_epoch == callback.stopped_epoch and stopper.best_epoch == callback.best_epoch
    for ours, theirs in zip(model.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


# ---------------------------------------------------------------- TensorBoard
def tensorboard_scalars(logdir) -> dict[str, list[tuple[int, float]]]:
    """Every scalar under ``logdir`` as TensorBoard's own reader sees it, runs prefixed like read_scalars."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for folder in sorted({p.parent for p in logdir.rglob("events.out.tfevents.*")}):
        run = folder.relative_to(logdir).as_posix()
        accumulator = EventAccumulator(str(folder), size_guidance={"tensors": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["tensors"]:
            if accumulator.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
                continue
            name = tag if run == "." else f"{run}/{tag}"
            scalars[name] = sorted(
                (e.step, float(tf.make_ndarray(e.tensor_proto))) for e in accumulator.Tensors(tag)
            )
    return scalars


def test_read_scalars_reads_what_tensorboard_reads_from_the_trainers_logs(regression, tmp_path) -> None:
    (x, y), (x_val, y_val) = regression
    make_trainer(build()).fit((x, y), batch_size=64, epochs=3, validation_data=(x_val, y_val),
                              tensorboard_dir=tmp_path)
    ours = read_scalars(tmp_path)
    assert {"run-1/loss", "run-1/val_loss"} <= set(ours) and len(ours["run-1/loss"]) == 3
    assert ours == tensorboard_scalars(tmp_path)


def test_read_scalars_reads_what_tensorboard_reads_from_kerass_callback(regression, tmp_path) -> None:
    (x, y), (x_val, y_val) = regression
    model = build()
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.fit(x, y, batch_size=64, epochs=3, validation_data=(x_val, y_val), verbose=0,
              callbacks=[keras.callbacks.TensorBoard(str(tmp_path), histogram_freq=1)])
    ours = read_scalars(tmp_path)
    assert {"train/epoch_loss", "validation/epoch_loss", "train/epoch_mae"} <= set(ours)
    assert len(ours["validation/epoch_loss"]) == 3
    assert ours == tensorboard_scalars(tmp_path)


# --------------------------------------------------------------------- metrics
@pytest.mark.parametrize("threshold", [0.5, 0.7])
def test_binary_f1_equals_keras_f1_score(threshold) -> None:
    rng = np.random.default_rng(3)
    ours = BinaryF1(threshold=threshold)
    theirs = keras.metrics.F1Score(average=None, threshold=threshold)
    for _ in range(7):
        y_true = (rng.random((32, 1)) < 0.3).astype("float32")
        y_pred = np.clip(0.5 * y_true + 0.7 * rng.random((32, 1)), 0, 1).astype("float32")
        weight = rng.uniform(0.1, 2.0, size=32).astype("float32")
        ours.update_state(y_true, y_pred, sample_weight=weight)
        theirs.update_state(y_true, y_pred, sample_weight=weight)
    assert 0.3 < float(ours.result()) < 0.95
    assert float(ours.result()) == pytest.approx(float(theirs.result()[0]), abs=1e-6)


# ------------------------------------------------------------ a NaN loss
def test_the_loops_nan_stop_names_the_batch_where_terminate_on_nan_stops_fit(regression) -> None:
    """``loops.train`` raises naming the step at which the loss became NaN; ``fit()`` with
    ``keras.callbacks.TerminateOnNaN`` stops after that same batch (and returns quietly, with
    the NaN weights of that step in the model: the difference Chapter 12 explains)."""
    (x, y), _ = regression
    y_bad = y.copy()
    y_bad[100] = np.nan  # the 4th batch of 32 (samples 96..127)
    reference = build()
    reference.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    batches: list[int] = []
    seen = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(batch))
    reference.fit(x, y_bad, batch_size=32, epochs=3, shuffle=False, verbose=0,
                  callbacks=[keras.callbacks.TerminateOnNaN(), seen])
    assert batches == [0, 1, 2, 3]  # stopped after the 4th batch, in the first epoch
    assert not all(np.isfinite(w).all() for w in reference.get_weights())
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 4\b"):
        loops.train(build(), (x, y_bad), batch_size=32, optimizer=keras.optimizers.SGD(0.01),
                    loss_fn=keras.losses.MeanSquaredError(), epochs=3, verbose=0)
