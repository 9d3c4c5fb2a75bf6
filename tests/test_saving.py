"""Saving after a custom loop: .keras with own classes, .weights.h5, and an export served elsewhere."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tutorial_helpers import loops
from tutorial_helpers.losses import BinaryFocalLoss
from tutorial_helpers.saving import Standardize, predict_in_new_process

RNG = np.random.default_rng(0)
X = RNG.normal(3.0, 2.0, size=(64, 4)).astype(np.float32)
Y = (X[:, :1] > 3.0).astype(np.float32)


def trained():
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,)), Standardize(X.mean(0), X.std(0)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(0.01)
    loss = BinaryFocalLoss(from_logits=True)
    loops.train(model, (X, Y), batch_size=16, epochs=2, optimizer=optimizer, loss_fn=loss, verbose=0)
    model.compile(optimizer=optimizer, loss=loss)
    return model


def test_standardize_computes() -> None:
    layer = Standardize([1.0, 2.0], [2.0, 4.0])
    np.testing.assert_allclose(layer(np.array([[3.0, 6.0]], np.float32)), [[1.0, 1.0]])


def test_keras_file_round_trip_keeps_classes_and_optimizer(tmp_path) -> None:
    model = trained()
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.layers[0], Standardize) and loaded.layers[0].std == model.layers[0].std
    assert isinstance(loaded.loss, BinaryFocalLoss)
    assert np.array_equal(model.predict(X, verbose=0), loaded.predict(X, verbose=0))
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 8


def test_weights_file_needs_its_name_and_round_trips(tmp_path) -> None:
    model = trained()
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        model.save_weights(tmp_path / "m.h5")
    model.save_weights(tmp_path / "m.weights.h5")
    keras.utils.set_random_seed(9)
    other = keras.Sequential([keras.Input((4,)), Standardize(X.mean(0), X.std(0)), keras.layers.Dense(1)])
    other.load_weights(tmp_path / "m.weights.h5")
    assert np.array_equal(model.predict(X, verbose=0), other.predict(X, verbose=0))


def test_export_is_served_in_a_process_without_the_classes(tmp_path) -> None:
    model = trained()
    model.export(tmp_path / "served", verbose=False)
    served = predict_in_new_process(tmp_path / "served", X)
    np.testing.assert_allclose(served, model.predict(X, verbose=0), atol=1e-6)


def test_a_broken_export_reports_the_loading_error(tmp_path) -> None:
    (tmp_path / "saved_model.pb").write_bytes(b"not a model")
    with pytest.raises(RuntimeError, match="loading the export failed"):
        predict_in_new_process(tmp_path, X)
