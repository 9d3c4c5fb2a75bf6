"""Chapter 2's hand-written loop: equal to fit(), and strict about its input."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers import data, loops
from tutorial_helpers.compare import max_weight_difference


def build_mlp(seed: int = 1) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(10, activation="relu"), keras.layers.Dense(1)]
    )



@pytest.fixture(scope="module")
def regression() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    x, y = data.make_regression_data(n=1000, seed=0)
    return data.train_val_split(x, y, val_fraction=0.2, seed=0)


def test_loop_equals_fit_weights_and_history(regression) -> None:
    (x, y), (x_val, y_val) = regression
    x, y = x[:790], y[:790]  # a partial last batch (790 = 24 * 32 + 22) is part of the test
    reference = build_mlp()
    reference.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    fitted = reference.fit(
        x, y, batch_size=32, epochs=3, shuffle=False, validation_data=(x_val, y_val), verbose=0
    )

    model = build_mlp()
    history = loops.train(
        model,
        (x, y),
        batch_size=32,
        optimizer=keras.optimizers.Adam(0.01),
        loss_fn=keras.losses.MeanSquaredError(),
        metrics=[keras.metrics.MeanAbsoluteError(name="mae")],
        validation_data=(x_val, y_val),
        epochs=3,
        verbose=0,
    )
    assert max_weight_difference(model, reference) == 0.0
    assert set(history) == set(fitted.history) == {"loss", "mae", "val_loss", "val_mae"}
    for key, values in fitted.history.items():
        assert history[key] == values, key


def test_loop_equals_fit_on_a_dataset_with_sample_weights(regression) -> None:
    (x, y), _ = regression
    weights = np.linspace(0.1, 2.0, len(x)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(64)
    reference = build_mlp()
    reference.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse")
    fitted = reference.fit(dataset, epochs=2, shuffle=False, verbose=0)
    model = build_mlp()
    history = loops.train(
        model,
        dataset,
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss_fn=keras.losses.MeanSquaredError(),
        epochs=2,
        verbose=0,
    )
    assert max_weight_difference(model, reference) == 0.0
    assert history["loss"] == fitted.history["loss"]


def test_loop_adds_the_models_own_losses_like_fit(regression) -> None:
    (x, y), _ = regression

    def build() -> keras.Model:
        keras.utils.set_random_seed(2)
        reg = keras.regularizers.L2(0.01)
        return keras.Sequential(
            [keras.Input((3,)), keras.layers.Dense(8, activation="relu", kernel_regularizer=reg),
             keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L1(0.01))]
        )

    reference = build()
    reference.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    fitted = reference.fit(x, y, batch_size=100, epochs=2, shuffle=False, verbose=0)
    model = build()
    history = loops.train(model, (x, y), batch_size=100, optimizer=keras.optimizers.Adam(0.01),
                          loss_fn=keras.losses.MeanSquaredError(), epochs=2, verbose=0)
    assert max_weight_difference(model, reference) == 0.0
    assert history["loss"] == fitted.history["loss"]


def test_loop_learns_the_regression(regression) -> None:
    (x, y), (x_val, y_val) = regression
    model = build_mlp()
    history = loops.train(model, (x, y), batch_size=32, optimizer=keras.optimizers.Adam(0.01),
                          loss_fn=keras.losses.MeanSquaredError(), validation_data=(x_val, y_val),
                          epochs=20, verbose=0)
    assert history["val_loss"][-1] < 0.02  # noise variance is 0.01
    sample = np.array([[0.5, 0.3, 0.2]], dtype=np.float32)
    assert float(model(sample)[0, 0]) == pytest.approx(float(data.regression_target(sample)[0, 0]), abs=0.1)


def test_verbose_shows_a_progress_bar(regression, capsys) -> None:
    (x, y), _ = regression
    loops.train(build_mlp(), (x[:64], y[:64]), batch_size=32, optimizer=keras.optimizers.SGD(0.01),
                loss_fn=keras.losses.MeanSquaredError(), epochs=2, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out and "2/2" in out and "loss:" in out
    loops.train(build_mlp(), (x[:64], y[:64]), batch_size=32, optimizer=keras.optimizers.SGD(0.01),
                loss_fn=keras.losses.MeanSquaredError(), epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_nan_loss_stops_with_epoch_and_step(regression) -> None:
    (x, y), _ = regression
    y_bad = y.copy()
    y_bad[100] = np.inf  # the 4th batch of 32 (samples 96..127)
    dataset = tf.data.Dataset.from_tensor_slices((x, y_bad)).batch(32)
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 4"):
        loops.train(build_mlp(), dataset, optimizer=keras.optimizers.SGD(0.01),
                    loss_fn=keras.losses.MeanSquaredError(), epochs=3, verbose=0)


def test_diverging_learning_rate_stops_training(regression) -> None:
    (x, y), _ = regression
    with pytest.raises(FloatingPointError, match=r"epoch \d+, step \d+"):
        loops.train(build_mlp(), (x * 100, y), batch_size=32, optimizer=keras.optimizers.SGD(10.0),
                    loss_fn=keras.losses.MeanSquaredError(), epochs=5, verbose=0)


def _train(train_data, **kwargs):
    defaults = dict(optimizer=keras.optimizers.SGD(0.01), loss_fn=keras.losses.MeanSquaredError(),
                    epochs=1, verbose=0)
    defaults.update(kwargs)
    return loops.train(build_mlp(), train_data, **defaults)


@pytest.mark.parametrize(
    ("train_data", "kwargs", "error", "message"),
    [
        ((np.zeros((10, 3)), np.zeros((9, 1))), {"batch_size": 4}, ValueError, "same length"),
        ((np.zeros((0, 3)), np.zeros((0, 1))), {"batch_size": 4}, ValueError, "x must not be empty"),
        ((np.zeros((10, 3)), np.zeros((10, 1))), {}, ValueError, "batch_size is required"),
        ((np.zeros((10, 3)), np.zeros((10, 1))), {"batch_size": 0}, ValueError, "batch_size"),
        ((np.zeros((10, 3)), np.zeros((10, 1))), {"batch_size": 4, "epochs": 0}, ValueError, "epochs"),
        ((np.zeros((10, 3)), np.zeros((10, 1))), {"batch_size": 4, "verbose": 2}, ValueError, "verbose"),
        ((np.zeros((10, 3)), np.zeros((10, 1))), {"batch_size": 4, "optimizer": "adam"}, TypeError,
         "optimizer"),
        ((np.array([["a"] * 3] * 10)), {"batch_size": 4}, TypeError, "train_data must be a"),
        ((np.array([["a"] * 3] * 10), np.zeros((10, 1))), {"batch_size": 4}, TypeError, "x must be numeric"),
        (tf.data.Dataset.from_tensor_slices(np.zeros((10, 3))).batch(2), {}, ValueError,
         r"must yield \(x, y\)"),
        (tf.data.Dataset.from_tensor_slices((np.zeros((10, 3)), np.zeros(10))), {}, ValueError,
         "must be batched"),
        (tf.data.Dataset.from_tensor_slices((np.zeros((10, 3)), np.zeros((10, 1)))).batch(2),
         {"batch_size": 2}, ValueError, "already a tf.data.Dataset"),
        (tf.data.Dataset.from_tensor_slices((np.zeros((10, 3)), np.zeros((10, 1)))).batch(2).take(0),
         {}, ValueError, "is empty"),
        (tf.data.Dataset.from_tensor_slices((np.zeros((10, 3)), np.zeros((10, 1)))).batch(2)
         .filter(lambda x, y: False), {}, ValueError, "yielded no batches"),
    ],
)
def test_bad_input_gives_a_clear_error(train_data, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        _train(train_data, **kwargs)


def test_evaluate_matches_model_evaluate(regression) -> None:
    (x, y), _ = regression
    model = build_mlp()
    model.compile(loss="mse", metrics=["mae"])
    expected = model.evaluate(x, y, batch_size=50, verbose=0, return_dict=True)
    got = loops.evaluate(model, (x, y), batch_size=50, loss_fn=keras.losses.MeanSquaredError(),
                         metrics=[keras.metrics.MeanAbsoluteError(name="mae")])
    assert got == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------ Chapter 10
@pytest.mark.parametrize("steps_per_execution", [1, 3, 8, 32, "epoch"])
def test_every_execution_mode_reaches_the_same_weights(regression, steps_per_execution) -> None:
    (x, y), (x_val, y_val) = regression
    x, y = x[:790], y[:790]  # 25 batches: the last one partial, and 25 is no multiple of 3 or 8
    kwargs = dict(batch_size=32, loss_fn=keras.losses.MeanSquaredError(), epochs=3, verbose=0,
                  validation_data=(x_val, y_val),
                  metrics=[keras.metrics.MeanAbsoluteError(name="mae")])
    plain = build_mlp()
    plain_history = loops.train(plain, (x, y), optimizer=keras.optimizers.Adam(0.01), **kwargs)
    fast = build_mlp()
    fast_history = loops.train(fast, (x, y), optimizer=keras.optimizers.Adam(0.01),
                               steps_per_execution=steps_per_execution, **kwargs)
    assert max_weight_difference(plain, fast) == 0.0
    for key, values in plain_history.items():
        assert fast_history[key] == values, key


def test_xla_step_reaches_the_same_weights(regression) -> None:
    from tutorial_helpers import steps

    (x, y), _ = regression
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    models_ = []
    for jit in (False, True):
        model = build_mlp()
        body = steps.train_step_body(model, keras.optimizers.Adam(0.01), keras.losses.MeanSquaredError(),
                                     keras.metrics.Mean())
        step = steps.compile_step(body, jit_compile=jit)
        for _ in range(2):
            for xb, yb in dataset:
                step(xb, yb)
        models_.append(model)
    assert max_weight_difference(*models_) <= 1e-5


@pytest.mark.parametrize("steps_per_execution", [8, "epoch"])
def test_nan_is_reported_with_its_step_in_fused_modes(regression, steps_per_execution) -> None:
    (x, y), _ = regression
    y_bad = y.copy()
    y_bad[330] = np.nan  # batch 11 (samples 320..351)
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 11"):
        loops.train(build_mlp(), (x, y_bad), batch_size=32, optimizer=keras.optimizers.SGD(0.01),
                    loss_fn=keras.losses.MeanSquaredError(), epochs=2, verbose=0,
                    steps_per_execution=steps_per_execution)


@pytest.mark.parametrize(
    ("train_data", "value", "message"),
    [
        ("arrays", 0, "steps_per_execution"),
        ("arrays", "fast", "steps_per_execution"),
        ("dataset", "epoch", "in-memory arrays"),
        ("unknown length", 4, "known length"),
    ],
)
def test_bad_steps_per_execution(regression, train_data, value, message) -> None:
    (x, y), _ = regression
    data_ = {
        "arrays": (x, y),
        "dataset": tf.data.Dataset.from_tensor_slices((x, y)).batch(32),
        "unknown length": tf.data.Dataset.from_tensor_slices((x, y)).batch(32).filter(lambda a, b: True),
    }[train_data]
    with pytest.raises(ValueError, match=message):
        loops.train(build_mlp(), data_, batch_size=32 if train_data == "arrays" else None,
                    optimizer=keras.optimizers.SGD(0.01), loss_fn=keras.losses.MeanSquaredError(),
                    epochs=1, verbose=0, steps_per_execution=value)


def test_a_reader_finds_chapter_2s_loop_in_the_helpers() -> None:
    """Opening loops.py (and the step in steps.py) after Chapter 2 shows the same loop.

    Every numbered line of Chapter 2's train step, and every line of its epoch
    loop that runs a step, appears in ``loops``'s module docstring; the helper's
    own step carries the same five numbered comments.
    """
    import inspect
    import json
    from pathlib import Path

    from tutorial_helpers import steps

    chapter = Path(__file__).resolve().parents[1] / "book" / "02_writing_the_training_loop.ipynb"
    notebook = json.loads(chapter.read_text())
    cells = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    step = next(c for c in cells if c.startswith("@tf.function\ndef train_step("))
    loop = next(c for c in cells if "for epoch in range(1, EPOCHS + 1):" in c)
    numbered = [
        line.strip() for line in step.splitlines() if "  # " in line and ". " in line.split("  # ")[1]
    ]
    assert len(numbered) == 5, numbered
    wanted = numbered[:4] + [
        line.strip()
        for line in loop.splitlines()
        if "for " in line or "_step(" in line or "reset_state" in line
    ]
    doc = "\n".join(line.strip() for line in loops.__doc__.splitlines())
    missing = [line for line in wanted if line not in doc]
    assert not missing, f"loops.py's docstring no longer shows Chapter 2's loop: {missing}"
    source = inspect.getsource(steps.train_step_body)
    for comment in ("# 1. forward", "# 2. loss", "# 3. backward", "# 4. update", "# 5. log"):
        assert comment in source, f"steps.train_step_body lost Chapter 2's comment {comment!r}"
