"""BinaryF1 against scikit-learn, in batches, with weights, and in the three kinds of loop."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sklearn.metrics import f1_score

from tutorial_helpers import loops, models
from tutorial_helpers.custom_fit import CustomFitModel
from tutorial_helpers.metrics import BinaryF1


def draw(n: int = 150, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 2, n).astype(np.float32), rng.random(n).astype(np.float32),
            rng.uniform(0.2, 4.0, n).astype(np.float32))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("batch", [1, 16, 150])
def test_equals_sklearn_with_sample_weights_over_batches(seed, batch) -> None:
    labels, probabilities, weights = draw(seed=seed)
    metric = BinaryF1()
    for start in range(0, len(labels), batch):
        part = slice(start, start + batch)
        metric.update_state(labels[part], probabilities[part], sample_weight=weights[part])
    expected = f1_score(labels, probabilities > 0.5, sample_weight=weights)
    assert float(metric.result()) == pytest.approx(expected, abs=1e-6)


def test_logits_threshold_and_unweighted() -> None:
    labels, probabilities, _ = draw(seed=3)
    logits = np.log(probabilities / (1 - probabilities))
    metric = BinaryF1(from_logits=True, threshold=0.7)
    metric.update_state(labels[:, None], logits[:, None])
    assert float(metric.result()) == pytest.approx(f1_score(labels, probabilities > 0.7), abs=1e-6)


def test_reset_and_no_positives() -> None:
    metric = BinaryF1()
    metric.update_state([1.0, 0.0], [0.9, 0.8])
    metric.reset_state()
    assert float(metric.result()) == 0.0  # nothing seen: 0, like scikit-learn's zero_division
    metric.update_state([0.0, 0.0], [0.1, 0.2])
    assert float(metric.result()) == 0.0


def test_config_round_trip() -> None:
    metric = BinaryF1(threshold=0.3, from_logits=True, name="f1_at_0.3")
    again = BinaryF1.from_config(metric.get_config())
    assert (again.threshold, again.from_logits, again.name) == (0.3, True, "f1_at_0.3")


def test_the_loop_override_and_fit_report_the_same_weighted_f1() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    y = (x[:, :1] + 0.5 * rng.normal(size=(200, 1)) > 0.6).astype(np.float32)
    w = np.where(y[:, 0] == 1, 3.0, 1.0).astype(np.float32)
    val = (x[:60], y[:60], w[:60])

    def net():
        return models.make_mlp(4, (8,), seed=2)

    def bce():
        return keras.losses.BinaryCrossentropy(from_logits=True)

    looped = net()
    history = loops.train(looped, (x, y, w), batch_size=32, epochs=3, optimizer=keras.optimizers.Adam(0.01),
                          loss_fn=bce(), metrics=[BinaryF1(from_logits=True)], validation_data=val, verbose=0)
    plain = net()
    for model in (CustomFitModel(plain.inputs, plain.outputs), net()):
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss=bce(),
                      weighted_metrics=[BinaryF1(from_logits=True)])
        fitted = model.fit(x, y, sample_weight=w, batch_size=32, epochs=3, validation_data=val,
                           shuffle=False, verbose=0).history
        assert fitted["f1"] == history["f1"] and fitted["val_f1"] == history["val_f1"]
    predictions = looped.predict(val[0], verbose=0)[:, 0] > 0.0
    expected = f1_score(val[1][:, 0], predictions, sample_weight=val[2])
    assert history["val_f1"][-1] == pytest.approx(expected, abs=1e-6)
