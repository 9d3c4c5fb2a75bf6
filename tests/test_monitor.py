"""The training monitor and the timing callback, with fit() and with the trainer."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from tutorial_helpers import data
from tutorial_helpers.monitor import TrainingMonitor, smooth
from tutorial_helpers.trainer import Trainer


def test_smooth_is_a_debiased_moving_average() -> None:
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])
    values = smooth([0.0, 1.0], weight=0.5)
    assert values == pytest.approx([0.0, (0.5 * 0.0 + 0.5 * 1.0) / (1 - 0.25)])
    with pytest.raises(ValueError, match="weight"):
        smooth([1.0], weight=1.0)


@pytest.fixture(scope="module")
def classification():
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=300, n_features=5, random_state=0)
    return x.astype(np.float32), y.astype(np.float32)[:, None]


def classifier() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(1, activation="sigmoid")])


def test_monitor_records_every_epoch_from_the_trainer(classification) -> None:
    x, y = classification
    monitor = TrainingMonitor()
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=10, decay_rate=0.5)
    history = Trainer(classifier(), optimizer=keras.optimizers.Adam(schedule),
                      loss_fn=keras.losses.BinaryCrossentropy(),
                      metrics=[keras.metrics.BinaryAccuracy(name="accuracy")]).fit(
        (x[:200], y[:200]), batch_size=50, epochs=4, validation_data=(x[200:], y[200:]),
        callbacks=[monitor])
    for key in ("loss", "val_loss", "accuracy", "val_accuracy", "grad_norm", "learning_rate"):
        assert monitor.history[key] == pytest.approx(history[key]), key
    # 4 steps per epoch, the rate halves every 10 steps: the rate after each epoch's last step
    assert monitor.history["learning_rate"] == pytest.approx(
        [0.05 * 0.5 ** (4 * e / 10) for e in range(1, 5)], rel=1e-5)
    figure = monitor.plot("test")
    axes = {ax.get_title(): ax for ax in figure.axes}
    assert figure._suptitle.get_text() == "test"

    def plotted(title: str, label: str) -> np.ndarray:
        line = next(line for line in axes[title].get_lines() if line.get_label() == label)
        return np.asarray(line.get_ydata())

    np.testing.assert_array_equal(plotted("Loss", "train"), history["loss"])
    np.testing.assert_array_equal(plotted("Loss", "validation"), history["val_loss"])
    np.testing.assert_array_equal(plotted("Accuracy", "validation"), history["val_accuracy"])
    np.testing.assert_array_equal(plotted("Learning rate", "learning rate"), history["learning_rate"])
    grad_norm = plotted("Global gradient norm", "mean over the epoch")
    np.testing.assert_array_equal(grad_norm, history["grad_norm"])
    gap = np.asarray(history["val_loss"]) - np.asarray(history["loss"])
    np.testing.assert_allclose(axes["Overfitting gap (val_loss - loss)"].get_lines()[0].get_ydata(), gap)
    np.testing.assert_allclose(plotted("Training loss, smoothed", "smoothed (0.6)"), smooth(history["loss"]))
    assert axes["Learning rate"].get_yscale() == "log"


def test_monitor_with_fit_marks_the_gradient_norm_as_not_logged(classification) -> None:
    x, y = classification
    monitor = TrainingMonitor()
    model = classifier()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, validation_split=0.2, callbacks=[monitor], verbose=0)
    assert len(monitor.history["accuracy"]) == 2 and not math.isnan(monitor.history["val_accuracy"][1])
    assert all(math.isnan(v) for v in monitor.history["grad_norm"])
    assert monitor.history["learning_rate"] == pytest.approx([0.01, 0.01])
    texts = [t.get_text() for ax in monitor.plot().axes for t in ax.texts]
    assert "grad_norm not logged" in texts


def test_monitor_records_regression_runs_without_accuracy() -> None:
    x, y = data.make_regression_data(n=64, seed=0)
    monitor = TrainingMonitor()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    Trainer(model, optimizer=keras.optimizers.SGD(0.1), loss_fn=keras.losses.MeanSquaredError()).fit(
        (x, y), batch_size=32, epochs=2, callbacks=[monitor])
    assert all(math.isnan(v) for v in monitor.history["accuracy"])
    monitor.plot()
