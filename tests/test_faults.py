"""What learners do to a trainer: re-run cells, interrupt runs, reuse objects, share folders.

One test per fault found when the trainer was tried as a new user would try
it (a re-run cell is two calls in one process).  Each ends in a clear error,
checked by its type and a fragment of its message, or in the right result,
checked exactly (a weight difference of 0.0 against an uninterrupted run).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from trainer_setup import build, make_trainer  # tests/ is on the path under pytest

from tutorial_helpers import loops
from tutorial_helpers.compare import max_weight_difference
from tutorial_helpers.early_stopping import EarlyStopper
from tutorial_helpers.summaries import read_scalars
from tutorial_helpers.trainer import CheckpointError


class InterruptAt(keras.callbacks.Callback):
    """Ctrl-C, pressed after step ``step`` (1-based) of epoch ``epoch`` (1-based)."""

    def __init__(self, epoch: int, step: int) -> None:
        super().__init__()
        self.epoch, self.step, self.current = epoch, step, 0

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self.current = epoch + 1

    def on_train_batch_end(self, batch, logs=None) -> None:
        if (self.current, batch + 1) == (self.epoch, self.step):
            raise KeyboardInterrupt


class EndRecorder(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.ended = False

    def on_train_end(self, logs=None) -> None:
        self.ended = True


# ------------------------------------------------------------ 1. reused stopper
def test_1_a_reused_stopper_starts_over(regression) -> None:
    (x, y), (x_val, y_val) = regression
    stop = EarlyStopper("val_loss", patience=2, min_delta=0.05)
    kwargs = dict(batch_size=32, epochs=40, validation_data=(x_val, y_val), early_stopping=stop)
    a, b = build(seed=1), build(seed=2)
    make_trainer(a).fit((x, y), **kwargs)
    h = make_trainer(b).fit((x, y), **kwargs)  # the cell, run again with a new model
    assert len(h["loss"]) > 1
    assert max_weight_difference(a, b) > 0.0  # b kept its own weights, not a's best


# ------------------------------------------ 2. resuming with other settings
def _saved_run(regression, directory: Path, **settings) -> None:
    (x, y), _ = regression
    optimizer = settings.pop("optimizer", keras.optimizers.Adam(0.01))
    make_trainer(build(), optimizer).fit((x, y), batch_size=settings.pop("batch_size", 32), epochs=2,
                                         checkpoint_dir=directory, **settings)


@pytest.mark.parametrize(
    ("optimizer", "message"),
    [
        (keras.optimizers.Adam(1e-4), r"optimizer.learning_rate: saved 0.0099.*, now 9.99.*e-05"),
        (keras.optimizers.AdamW(0.01), r"optimizer.class: saved '.*adam.Adam', now '.*AdamW'"),
        (keras.optimizers.SGD(0.01), r"optimizer.class: .*now 'keras.src.optimizers.sgd.SGD'"),
        (keras.optimizers.SGD(0.01, momentum=0.9), r"optimizer.momentum: saved '\(not set\)', now 0.9"),
        (keras.optimizers.RMSprop(0.01), r"optimizer.rho: saved '\(not set\)', now 0.9"),
        (keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.01, 10, 0.9)),
         r"optimizer.learning_rate.class_name: saved '\(not set\)', now 'ExponentialDecay'"),
    ],
)
def test_2_resuming_with_another_optimizer_is_refused_naming_what_differs(
    regression, tmp_path, optimizer, message
) -> None:
    _saved_run(regression, tmp_path)
    (x, y), _ = regression
    model = build(seed=3)
    before = model.get_weights()
    with pytest.raises(CheckpointError, match=message):
        make_trainer(model, optimizer).fit((x, y), batch_size=32, epochs=4, checkpoint_dir=tmp_path,
                                           resume=True)
    for now, then in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(now, then)  # refused before anything was restored or trained


def test_2_resuming_with_another_batch_size_or_loss_is_refused(regression, tmp_path) -> None:
    _saved_run(regression, tmp_path)
    (x, y), _ = regression
    with pytest.raises(CheckpointError, match="batch_size: saved 32, now 64"):
        make_trainer(build()).fit((x, y), batch_size=64, epochs=4, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(CheckpointError, match=r"loss.class: saved '.*MeanSquaredError', now '.*Huber'"):
        make_trainer(build(), loss_fn=keras.losses.Huber()).fit(
            (x, y), batch_size=32, epochs=4, checkpoint_dir=tmp_path, resume=True)


def test_2_resuming_with_the_same_settings_continues_the_run(regression, tmp_path) -> None:
    _saved_run(regression, tmp_path)
    (x, y), _ = regression
    trainer = make_trainer(build(seed=3))
    history = trainer.fit((x, y), batch_size=32, epochs=4, checkpoint_dir=tmp_path, resume=True)
    assert trainer.start_epoch == 2 and len(history["loss"]) == 4
    assert history["learning_rate"] == pytest.approx([0.01] * 4)


def test_2_a_rate_lowered_by_a_callback_does_not_block_the_runs_own_resume(regression, tmp_path) -> None:
    (x, y), _ = regression
    trainer = make_trainer(build())
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit((x, y), batch_size=32, epochs=5, checkpoint_dir=tmp_path,
                    callbacks=[plateau, InterruptAt(epoch=3, step=2)])
    assert float(trainer.optimizer.learning_rate) == pytest.approx(0.005)  # lowered after epoch 2
    history = trainer.fit((x, y), batch_size=32, epochs=5, checkpoint_dir=tmp_path, resume=True,
                          callbacks=[plateau])  # the same trainer and optimizer: the same run
    assert len(history["learning_rate"]) == 5
    assert history["learning_rate"][:3] == pytest.approx([0.01, 0.01, 0.005])  # epoch 3 goes on at 0.005


# ----------------------------------------------------- 3. shared folders
def test_3_a_new_run_in_a_used_checkpoint_dir_is_refused(regression, tmp_path) -> None:
    _saved_run(regression, tmp_path)
    (x, y), _ = regression
    model = build(seed=3)
    before = model.get_weights()
    with pytest.raises(CheckpointError, match=r"already holds the checkpoints of a run .*resume=True"):
        make_trainer(model).fit((x, y), batch_size=32, epochs=5, checkpoint_dir=tmp_path)
    assert max(np.abs(a - b).max() for a, b in zip(model.get_weights(), before, strict=True)) == 0.0


def test_3_a_finished_run_returns_its_whole_history(regression, tmp_path) -> None:
    (x, y), _ = regression
    first = make_trainer(build()).fit((x, y), batch_size=32, epochs=3, checkpoint_dir=tmp_path)
    for epochs in (3, 2):
        again = make_trainer(build(seed=4)).fit((x, y), batch_size=32, epochs=epochs,
                                                checkpoint_dir=tmp_path, resume=True)
        assert again == first and len(again["loss"]) == 3


def test_3_two_runs_in_one_tensorboard_dir_keep_their_logs_apart(regression, tmp_path) -> None:
    (x, y), _ = regression
    runs = []
    for seed in (1, 2):
        trainer = make_trainer(build(seed=seed))
        history = trainer.fit((x, y), batch_size=32, epochs=3, tensorboard_dir=tmp_path)
        runs.append((trainer.log_dir, history))
    assert [log_dir.name for log_dir, _ in runs] == ["run-1", "run-2"]
    together = read_scalars(tmp_path)
    for log_dir, history in runs:
        assert [v for _, v in read_scalars(log_dir)["loss"]] == pytest.approx(history["loss"])
        assert [step for step, _ in together[f"{log_dir.name}/loss"]] == [0, 1, 2]  # not interleaved


def test_3_a_resumed_run_logs_into_its_own_folder(regression, tmp_path) -> None:
    (x, y), _ = regression
    kwargs = dict(batch_size=32, checkpoint_dir=tmp_path / "ckpt", tensorboard_dir=tmp_path / "tb")
    make_trainer(build()).fit((x, y), epochs=2, **kwargs)
    trainer = make_trainer(build(seed=3))
    history = trainer.fit((x, y), epochs=4, resume=True, **kwargs)
    assert trainer.log_dir.name == "run-1"
    assert [s for s, _ in read_scalars(trainer.log_dir)["loss"]] == [0, 1, 2, 3]
    assert [v for _, v in read_scalars(trainer.log_dir)["loss"]] == pytest.approx(history["loss"])


# --------------------------------------------- 4. exact resume, every source
def _shuffled_dataset(x, y, global_seed: int = 0) -> tf.data.Dataset:
    """A reshuffling pipeline, built as a chapter builds it: after its seeds are set."""
    tf.random.set_seed(global_seed)
    return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=3).batch(16)


def _generator_dataset(x, y) -> tf.data.Dataset:
    def batches():
        for start in range(0, len(x), 16):
            yield x[start:start + 16], y[start:start + 16]
    spec = (tf.TensorSpec((None, 3), tf.float32), tf.TensorSpec((None, 1), tf.float32))
    return tf.data.Dataset.from_generator(batches, output_signature=spec)


@pytest.mark.parametrize("source", ["arrays", "tf.data shuffle", "generator"])
def test_4_a_run_interrupted_mid_epoch_resumes_exactly(regression, tmp_path, source) -> None:
    (x, y), (x_val, y_val) = regression

    def fit(model, **kwargs):
        if source == "arrays":
            data, extra = (x, y), dict(batch_size=16, shuffle_seed=7, validation_data=(x_val, y_val))
        else:
            make = _shuffled_dataset if source == "tf.data shuffle" else _generator_dataset
            validation = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(16)
            data, extra = make(x, y), dict(validation_data=validation)
        return make_trainer(model).fit(data, epochs=6, **extra, **kwargs)

    straight = build(dropout=0.3)
    fit(straight)
    with pytest.raises(KeyboardInterrupt):
        fit(build(dropout=0.3), checkpoint_dir=tmp_path, callbacks=[InterruptAt(epoch=4, step=5)])
    keras.utils.set_random_seed(999)
    resumed = build(seed=123, dropout=0.3)
    fit(resumed, checkpoint_dir=tmp_path, resume=True)
    assert max_weight_difference(straight, resumed) == 0.0


def test_4_a_shuffled_dataset_read_past_the_checkpoint_is_refused(regression, tmp_path) -> None:
    (x, y), _ = regression
    dataset = _shuffled_dataset(x, y)
    with pytest.raises(KeyboardInterrupt):
        make_trainer(build()).fit(dataset, epochs=6, checkpoint_dir=tmp_path,
                                  callbacks=[InterruptAt(epoch=4, step=5)])
    with pytest.raises(ValueError, match="read for 4 epochs in this process, but the checkpoint holds 3"):
        make_trainer(build()).fit(dataset, epochs=6, checkpoint_dir=tmp_path, resume=True)
    make_trainer(build()).fit(_shuffled_dataset(x, y), epochs=6, checkpoint_dir=tmp_path, resume=True)


def test_4_a_shuffle_built_under_another_global_seed_is_refused(regression, tmp_path) -> None:
    (x, y), _ = regression
    make_trainer(build()).fit(_shuffled_dataset(x, y), epochs=2, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match=r"data_shuffle_seeds: saved \[\[0, 3\]\], now \[\[5, 3\]\]"):
        make_trainer(build()).fit(_shuffled_dataset(x, y, global_seed=5), epochs=4, checkpoint_dir=tmp_path,
                                  resume=True)


def test_4_the_same_trainer_and_dataset_continue_exactly_in_one_process(regression, tmp_path) -> None:
    (x, y), _ = regression
    straight = build()
    make_trainer(straight).fit(_shuffled_dataset(x, y), epochs=5)
    model, dataset = build(), _shuffled_dataset(x, y)
    trainer = make_trainer(model)
    trainer.fit(dataset, epochs=2, checkpoint_dir=tmp_path)
    trainer.fit(dataset, epochs=5, checkpoint_dir=tmp_path, resume=True)
    assert max_weight_difference(straight, model) == 0.0


# ----------------------------------------------------------- 5. model swap
@pytest.mark.parametrize("attribute", ["model", "optimizer", "loss_fn"])
def test_5_the_trained_objects_cannot_be_swapped(attribute) -> None:
    trainer = make_trainer(build())
    with pytest.raises(AttributeError, match=f"{attribute} cannot be replaced.*Make a new Trainer with"):
        setattr(trainer, attribute, build(seed=2))


# ------------------------------------------------------------ 6. no peeking
def test_6_a_generator_read_once_loses_no_batch(regression) -> None:
    (x, y), _ = regression
    seen = []

    def once():
        for start in range(0, 128, 16):
            seen.append(start)
            yield x[start:start + 16], y[start:start + 16]

    source = once()
    spec = (tf.TensorSpec((None, 3), tf.float32), tf.TensorSpec((None, 1), tf.float32))
    dataset = tf.data.Dataset.from_generator(lambda: source, output_signature=spec)
    model = keras.Sequential([keras.layers.Dense(1)])  # not built: no batch may be read to build it
    trainer = make_trainer(model)
    trainer.fit(dataset, epochs=1)
    assert len(seen) == 8 and int(trainer.watch.steps.numpy()) == 8


def test_6_a_dataset_without_its_input_shape_is_refused_before_a_batch_is_read(regression) -> None:
    (x, y), _ = regression
    seen = []

    def batches():
        seen.append(1)
        yield x[:16], y[:16]

    for spec in [(tf.TensorSpec((None, None), tf.float32), tf.TensorSpec((None, 1), tf.float32)),
                 (tf.TensorSpec(None, tf.float32), tf.TensorSpec(None, tf.float32))]:  # not even the rank
        dataset = tf.data.Dataset.from_generator(batches, output_signature=spec)
        with pytest.raises(ValueError, match=r"model is not built.*output_signature"):
            make_trainer(keras.Sequential([keras.layers.Dense(1)])).fit(dataset, epochs=1)
    assert seen == []


# -------------------------------------------------------------------- 7. NaN
def test_7_after_a_nan_the_weights_are_the_last_finite_ones_and_a_rerun_says_the_same(regression) -> None:
    (x, y), _ = regression
    y_bad = y.copy()
    y_bad[95] = np.nan  # batch 4 of 30 samples
    model = build()
    trainer = make_trainer(model)
    trainer.fit((x, y), batch_size=30, epochs=2)
    good = model.get_weights()
    adam_state = [v.numpy() for v in trainer.optimizer.variables]
    messages = []
    for _ in range(2):  # the cell, run twice
        with pytest.raises(FloatingPointError) as error:
            trainer.fit((x, y_bad), batch_size=30, epochs=1)
        messages.append(str(error.value))
        assert max(np.abs(a - b).max() for a, b in zip(model.get_weights(), good, strict=True)) == 0.0
        for variable, saved in zip(trainer.optimizer.variables, adam_state, strict=True):
            np.testing.assert_array_equal(variable.numpy(), saved)
    assert messages[0] == messages[1]
    assert "epoch 1, step 4" in messages[0] and "put back as they were at the start of epoch 1" in messages[0]


def test_7_weights_left_nan_by_another_loop_are_named_not_blamed_on_the_data(regression) -> None:
    (x, y), _ = regression
    model = build()
    with pytest.raises(FloatingPointError):
        loops.train(model, (x, y * 1e6), optimizer=keras.optimizers.SGD(1e6),
                    loss_fn=keras.losses.MeanSquaredError(), batch_size=30, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"model's weights are not finite .*earlier run diverged"):
        make_trainer(model).fit((x, y), batch_size=30, epochs=1)


# ------------------------------------------------- 8. late or unclear errors
def test_8_an_unwritable_checkpoint_dir_is_refused_before_training(regression, tmp_path) -> None:
    (x, y), _ = regression
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    model = build()
    before = model.get_weights()
    for name in ("checkpoint_dir", "tensorboard_dir"):
        with pytest.raises(CheckpointError, match=f"{name} .*a-file/run cannot be written"):
            make_trainer(model).fit((x, y), batch_size=32, epochs=1, **{name: blocker / "run"})
    for now, then in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(now, then)


@pytest.mark.parametrize("garbage", [b"\xff\xfe\x00binary", b"model_checkpoint_path: ???", b"{not: json"])
def test_8_a_corrupt_index_is_a_checkpoint_error(regression, tmp_path, garbage) -> None:
    _saved_run(regression, tmp_path)
    (tmp_path / "checkpoint").write_bytes(garbage)
    (x, y), _ = regression
    with pytest.raises(CheckpointError, match=r"'checkpoint' index.* corrupt"):
        make_trainer(build()).fit((x, y), batch_size=32, epochs=4, checkpoint_dir=tmp_path, resume=True)


def test_8_a_corrupt_run_file_is_a_checkpoint_error(regression, tmp_path) -> None:
    _saved_run(regression, tmp_path)
    (tmp_path / "run.json").write_text("{ half a file")
    (x, y), _ = regression
    with pytest.raises(CheckpointError, match=r"run\.json cannot be read: it is corrupt"):
        make_trainer(build()).fit((x, y), batch_size=32, epochs=4, checkpoint_dir=tmp_path, resume=True)


def test_8_ctrl_c_inside_a_generator_is_a_keyboard_interrupt(regression, tmp_path) -> None:
    (x, y), _ = regression
    calls = []

    def batches():
        calls.append(1)
        for start in range(0, 128, 16):
            if len(calls) == 2 and start == 64:
                raise KeyboardInterrupt  # Ctrl-C while epoch 2 reads its data
            yield x[start:start + 16], y[start:start + 16]

    spec = (tf.TensorSpec((None, 3), tf.float32), tf.TensorSpec((None, 1), tf.float32))
    dataset = tf.data.Dataset.from_generator(batches, output_signature=spec)
    with pytest.raises(KeyboardInterrupt, match="interrupted while reading the data of epoch 2"):
        make_trainer(build()).fit(dataset, epochs=3, checkpoint_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.index")) == ["ckpt-1.index"]


def test_8_callbacks_and_the_writer_are_closed_when_the_data_fails(regression, tmp_path, monkeypatch) -> None:
    (x, y), _ = regression
    closed = []
    create = tf.summary.create_file_writer

    def recording_writer(*args, **kwargs):
        writer = create(*args, **kwargs)
        original = writer.close
        writer.close = lambda: (closed.append(True), original())
        return writer

    monkeypatch.setattr(tf.summary, "create_file_writer", recording_writer)

    def batches():
        yield x[:16], y[:16]
        raise OSError("the disk holding the data went away")

    spec = (tf.TensorSpec((None, 3), tf.float32), tf.TensorSpec((None, 1), tf.float32))
    recorder = EndRecorder()
    with pytest.raises(tf.errors.OpError, match="disk holding the data went away"):
        make_trainer(build()).fit(tf.data.Dataset.from_generator(batches, output_signature=spec), epochs=2,
                                  callbacks=[recorder], tensorboard_dir=tmp_path)
    assert recorder.ended and closed == [True]


def test_resume_needs_a_checkpoint_dir(regression) -> None:
    (x, y), _ = regression
    with pytest.raises(ValueError, match="resume=True needs the checkpoint_dir"):
        make_trainer(build()).fit((x, y), batch_size=32, epochs=1, resume=True)
