"""Chapter 12's instruments: gradient norms per layer, shape checks, standardization."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers import data, diagnostics, models


@pytest.fixture(scope="module")
def dataset():
    x, y = data.make_regression_data(n=256, seed=0)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(32)


def test_gradient_norms_match_a_direct_computation(dataset) -> None:
    model = models.make_mlp(3, (8, 8), seed=0)
    x, y = next(iter(dataset))
    with tf.GradientTape() as tape:
        loss = keras.losses.MeanSquaredError()(y, model(x, training=True))
    kernels = [layer.kernel for layer in diagnostics.dense_layers(model)]
    expected = [float(tf.norm(g)) for g in tape.gradient(loss, kernels)]
    norms, losses = diagnostics.record_gradient_norms(
        model, keras.optimizers.SGD(0.0), keras.losses.MeanSquaredError(), dataset, steps=3)
    assert norms.shape == (3, 3) and losses.shape == (3,)
    np.testing.assert_allclose(norms[0], expected, rtol=1e-5)
    assert losses[0] == pytest.approx(float(loss), rel=1e-6)


def test_bad_initialization_explodes_and_he_does_not(dataset) -> None:
    bad = models.make_mlp(3, (64,) * 6, seed=0,
                          kernel_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=0))
    good = models.make_mlp(3, (64,) * 6, seed=0, kernel_initializer="he_normal")
    run = dict(optimizer=keras.optimizers.SGD(0.01), loss_fn=keras.losses.MeanSquaredError(),
               dataset=dataset, steps=20)
    bad_norms, bad_losses = diagnostics.record_gradient_norms(bad, **run)
    run["optimizer"] = keras.optimizers.SGD(0.01)
    good_norms, good_losses = diagnostics.record_gradient_norms(good, **run)
    assert bad_norms[0, 0] > 1e4 * good_norms[0, 0]
    assert np.isnan(bad_losses).any() and np.isfinite(good_losses).all()
    assert np.isnan(bad_norms[-1]).all()  # padded after the stop


def test_record_needs_dense_layers(dataset) -> None:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda t: t[:, :1])])
    with pytest.raises(ValueError, match="no Dense layers"):
        diagnostics.record_gradient_norms(model, keras.optimizers.SGD(0.1),
                                          keras.losses.MeanSquaredError(), dataset, steps=1)


def test_assert_same_shape() -> None:
    diagnostics.assert_same_shape(tf.zeros((4, 1)), tf.zeros((4, 1)))
    with pytest.raises(ValueError, match=r"\(4,\) and predictions of shape \(4, 1\)"):
        diagnostics.assert_same_shape(tf.zeros((4,)), tf.zeros((4, 1)))
    with pytest.raises(ValueError, match="broadcast"):
        diagnostics.assert_same_shape(tf.zeros((4, 2)), tf.zeros((4, 1)))

    @tf.function(input_signature=[tf.TensorSpec([None, 1]), tf.TensorSpec([None, 1])])
    def fine(a, b):  # unknown batch sizes are compatible
        diagnostics.assert_same_shape(a, b)
        return a - b

    fine(tf.zeros((3, 1)), tf.zeros((3, 1)))


def test_standardize_uses_training_statistics() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(5.0, 3.0, (500, 2)).astype(np.float32)
    train[:, 1] = 7.0  # a constant feature
    test = train[:10] + 1.0
    train_std, test_std = diagnostics.standardize(train, test)
    np.testing.assert_allclose(train_std[:, 0].mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(train_std[:, 0].std(), 1.0, rtol=1e-4)
    np.testing.assert_array_equal(train_std[:, 1], 0.0)
    np.testing.assert_allclose(test_std[:, 0], train_std[:10, 0] + 1.0 / train[:, 0].std(), rtol=1e-4)
