"""Chapter 4's train_step overrides: they train exactly like plain fit(), and weigh samples right."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tutorial_helpers import custom_fit, data
from tutorial_helpers.compare import max_weight_difference


def build(cls=keras.Model, seed: int = 1, activation: str | None = None, **kwargs) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(10, activation="relu")(inputs)
    outputs = keras.layers.Dense(1, activation=activation)(hidden)
    return cls(inputs, outputs, **kwargs)



@pytest.fixture(scope="module")
def regression():
    x, y = data.make_regression_data(n=790, seed=0)  # 790 = 24 * 32 + 22: a partial last batch
    return x, y


def test_custom_train_step_equals_plain_fit(regression) -> None:
    x, y = regression
    runs = {}
    for cls in (keras.Model, custom_fit.CustomFitModel):
        model = build(cls)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
        history = model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0,
                            validation_data=(x[:100], y[:100]))
        runs[cls] = (model, history.history)
    (plain, plain_h), (custom, custom_h) = runs.values()
    assert max_weight_difference(plain, custom) == 0.0
    assert set(custom_h) == {"loss", "mae", "val_loss", "val_mae"}
    for key in plain_h:
        assert custom_h[key] == plain_h[key], key


def test_own_metrics_model_equals_plain_fit_and_resets_each_epoch(regression) -> None:
    x, y = regression
    plain = build()
    plain.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    plain_h = plain.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0).history
    own = build(custom_fit.OwnMetricsModel)
    own.compile(optimizer=keras.optimizers.Adam(0.01))  # no loss, no metrics
    own_h = own.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0).history
    assert max_weight_difference(plain, own) == 0.0
    assert own_h["loss"] == plain_h["loss"]
    assert own_h["mae"] == plain_h["mae"]
    # per-epoch values, not running averages since the start: the loss falls each epoch
    assert own_h["loss"][2] < own_h["loss"][1] < own_h["loss"][0]


def test_zero_sample_weight_equals_dropping_the_samples(regression) -> None:
    """Weights 0 on half and 2 on the other half == training on that half alone.

    The default reduction divides the weighted sum by the *batch size*, zeros
    included, so the kept half gets weight 2 to keep the same scale.  One full
    batch per epoch, so both runs see the same samples in every step.
    """
    x, y = regression
    keep = np.arange(len(x)) % 2 == 0
    weights = np.where(keep, 2.0, 0.0).astype(np.float32)
    weighted = build(custom_fit.CustomFitModel)
    weighted.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    weighted.fit(x, y, sample_weight=weights, batch_size=len(x), epochs=20, shuffle=False, verbose=0)
    half = build(custom_fit.CustomFitModel)
    half.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    half.fit(x[keep], y[keep], batch_size=len(x), epochs=20, shuffle=False, verbose=0)
    assert max_weight_difference(weighted, half) <= 1e-5


def test_class_weight_scales_the_loss_by_its_factor() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((64, 3), dtype=np.float32)
    y = np.ones((64, 1), dtype=np.float32)  # every sample is class 1
    losses = {}
    for name, class_weight in (("plain", None), ("weighted", {0: 1.0, 1: 3.0})):
        model = build(custom_fit.CustomFitModel, activation="sigmoid")
        model.compile(optimizer=keras.optimizers.SGD(0.0), loss="binary_crossentropy")
        history = model.fit(x, y, class_weight=class_weight, batch_size=16, epochs=1,
                            shuffle=False, verbose=0)
        losses[name] = history.history["loss"][0]
    assert losses["weighted"] == pytest.approx(3.0 * losses["plain"], rel=1e-6)


def test_custom_test_step_equals_metrics_by_hand(regression) -> None:
    x, y = regression
    for cls in (custom_fit.CustomFitModel, custom_fit.OwnMetricsModel):
        model = build(cls)
        if cls is custom_fit.CustomFitModel:
            model.compile(loss="mse", metrics=["mae"])
        else:
            model.compile()
        result = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)
        y_pred = model.predict(x, batch_size=64, verbose=0)
        assert result["loss"] == pytest.approx(float(np.mean((y_pred - y) ** 2)), rel=1e-5)
        assert result["mae"] == pytest.approx(float(np.mean(np.abs(y_pred - y))), rel=1e-5)


def test_evaluate_resets_the_trackers(regression) -> None:
    x, y = regression
    model = build(custom_fit.OwnMetricsModel)
    model.compile()
    first = model.evaluate(x, y, verbose=0, return_dict=True)
    second = model.evaluate(x[:100], y[:100], verbose=0, return_dict=True)
    third = model.evaluate(x, y, verbose=0, return_dict=True)
    assert first == pytest.approx(third, rel=1e-6)
    assert second["loss"] != pytest.approx(first["loss"], rel=1e-3)


def test_callbacks_and_validation_keep_working(regression) -> None:
    x, y = regression
    model = build(custom_fit.CustomFitModel)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    seen: list[int] = []
    logger = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=0, min_delta=10.0)
    history = model.fit(x, y, validation_split=0.2, epochs=10, callbacks=[logger, stopper], verbose=0)
    assert seen == [0, 1]  # min_delta=10 means no epoch improves: stops after patience 0
    assert len(history.history["val_loss"]) == 2
