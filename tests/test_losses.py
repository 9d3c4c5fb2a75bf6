"""Chapter 5's custom losses against NumPy references and their limiting cases."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers.losses import BinaryFocalLoss, WeightedMeanSquaredError


def focal_reference(y: np.ndarray, p: np.ndarray, alpha: float, gamma: float) -> float:
    """The focal loss written from its definition, in float64."""
    y, p = y.astype(np.float64), np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    p_t = np.where(y == 1, p, 1 - p)
    alpha_t = np.where(y == 1, alpha, 1 - alpha)
    return float(np.mean(-alpha_t * (1 - p_t) ** gamma * np.log(p_t)))


@pytest.fixture
def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = (rng.random((64, 1)) < 0.3).astype(np.float32)
    logits = rng.normal(0, 3, (64, 1)).astype(np.float32)
    return y, logits


@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (0.75, 0.5), (0.5, 0.0), (1.0, 5.0)])
def test_focal_loss_equals_numpy_reference(batch, alpha: float, gamma: float) -> None:
    y, logits = batch
    probs = 1 / (1 + np.exp(-logits.astype(np.float64)))
    expected = focal_reference(y, probs, alpha, gamma)
    from_probs = BinaryFocalLoss(alpha, gamma)(y, probs.astype(np.float32))
    from_logits = BinaryFocalLoss(alpha, gamma, from_logits=True)(y, logits)
    assert float(from_probs) == pytest.approx(expected, rel=1e-5)
    assert float(from_logits) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("labels", ["hard", "soft"])
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (0.75, 0.5), (0.5, 0.0)])
def test_focal_loss_equals_keras_binary_focal_crossentropy(labels, from_logits, alpha, gamma) -> None:
    """The built-in with class balancing is the same loss, on hard and soft labels, saturated
    logits included (on the TensorFlow backend Keras recovers the logit from its sigmoid)."""
    rng = np.random.default_rng(1)
    y = rng.random((64, 3)).astype(np.float32)
    if labels == "hard":
        y = (y < 0.3).astype(np.float32)
    z = rng.normal(0, 3, (64, 3)).astype(np.float32)
    z[:4, 0] = [40.0, -40.0, 25.0, -25.0]  # where the sigmoid rounds to 0 or 1
    y_pred = z if from_logits else tf.sigmoid(z).numpy()
    keras_loss = keras.losses.BinaryFocalCrossentropy(
        apply_class_balancing=True, alpha=alpha, gamma=gamma, from_logits=from_logits, reduction=None
    )
    ours = BinaryFocalLoss(alpha, gamma, from_logits=from_logits, reduction=None)
    np.testing.assert_allclose(ours(y, y_pred).numpy(), keras_loss(y, y_pred).numpy(), rtol=2e-5, atol=1e-7)


def test_soft_labels_give_the_same_loss_from_logits_and_from_probabilities() -> None:
    y = np.array([[0.9], [0.2], [0.5]], dtype=np.float32)
    z = np.array([[2.0], [-1.0], [0.3]], dtype=np.float32)
    from_logits = BinaryFocalLoss(0.25, 2.0, from_logits=True, reduction=None)(y, z).numpy()
    from_probs = BinaryFocalLoss(0.25, 2.0, reduction=None)(y, tf.sigmoid(z)).numpy()
    np.testing.assert_allclose(from_logits, from_probs, rtol=1e-5)
    # y = 0.9, z = 2 by hand: p = sigmoid(2); BCE = -(0.9 log p + 0.1 log(1 - p));
    # 1 - p_t = 0.9 (1 - p) + 0.1 p; alpha_t = 0.9 * 0.25 + 0.1 * 0.75
    p = 1 / (1 + np.exp(-2.0))
    bce = -(0.9 * np.log(p) + 0.1 * np.log(1 - p))
    expected = (0.9 * 0.25 + 0.1 * 0.75) * (0.9 * (1 - p) + 0.1 * p) ** 2 * bce
    assert from_logits[0] == pytest.approx(expected, rel=1e-5)


def test_out_of_range_labels_make_a_compiled_loss_nan() -> None:
    """Inside a compiled step a label cannot raise; it makes the loss NaN, which the loops report."""
    loss = BinaryFocalLoss(from_logits=True)
    compiled = tf.function(lambda y, z: loss(y, z))
    assert np.isnan(float(compiled(tf.constant([[3.0], [0.0]]), tf.constant([[0.5], [0.5]]))))
    assert np.isfinite(float(compiled(tf.constant([[1.0], [0.0]]), tf.constant([[0.5], [0.5]]))))


def test_gamma_zero_is_alpha_weighted_binary_cross_entropy(batch) -> None:
    y, logits = batch
    alpha = 0.8
    bce = keras.losses.BinaryCrossentropy(from_logits=True, reduction=None)(y, logits).numpy()
    weights = np.where(y[:, 0] == 1, alpha, 1 - alpha)
    focal = BinaryFocalLoss(alpha, gamma=0.0, from_logits=True)(y, logits)
    assert float(focal) == pytest.approx(float(np.mean(weights * bce)), rel=1e-6)


def test_half_alpha_and_gamma_zero_is_half_of_keras_bce(batch) -> None:
    y, logits = batch
    bce = keras.losses.BinaryCrossentropy(from_logits=True)(y, logits)
    focal = BinaryFocalLoss(alpha=0.5, gamma=0.0, from_logits=True)(y, logits)
    assert float(focal) == pytest.approx(0.5 * float(bce), rel=1e-6)


def test_focal_loss_is_finite_at_exact_zero_and_one() -> None:
    y = np.array([[0.0], [1.0], [0.0], [1.0]], dtype=np.float32)
    p = np.array([[0.0], [1.0], [1.0], [0.0]], dtype=np.float32)  # two right, two wrong
    loss = BinaryFocalLoss(0.25, 2.0)
    value = loss(y, p)
    assert np.isfinite(float(value)) and float(value) > 0
    with tf.GradientTape() as tape:
        p_var = tf.Variable(p)
        grads = tape.gradient(loss(y, p_var), p_var)
    assert np.all(np.isfinite(grads.numpy()))


def test_focal_loss_from_logits_is_exact_where_probabilities_saturate() -> None:
    y = np.array([[0.0]], dtype=np.float32)
    z = np.array([[40.0]], dtype=np.float32)  # sigmoid(40) == 1.0 in float32
    # -log(1 - sigmoid(40)) = softplus(40) = 40 (to float32 precision); (1 - p_t)^gamma -> 1
    value = BinaryFocalLoss(alpha=0.5, gamma=2.0, from_logits=True)(y, z)
    assert float(value) == pytest.approx(0.5 * 40.0, rel=1e-6)
    with tf.GradientTape() as tape:
        z_var = tf.Variable(z)
        grad = tape.gradient(BinaryFocalLoss(0.5, 2.0, from_logits=True)(y, z_var), z_var)
    assert float(grad[0, 0]) == pytest.approx(0.5, rel=1e-4)  # d/dz softplus(z) -> 1, times alpha


def test_focal_loss_down_weights_easy_examples() -> None:
    y = np.ones((2, 1), dtype=np.float32)
    easy, hard = np.array([[0.95]], dtype=np.float32), np.array([[0.3]], dtype=np.float32)
    focal, bce = BinaryFocalLoss(0.5, 2.0), BinaryFocalLoss(0.5, 0.0)
    ratio_easy = float(focal(y[:1], easy)) / float(bce(y[:1], easy))
    ratio_hard = float(focal(y[:1], hard)) / float(bce(y[:1], hard))
    assert ratio_easy == pytest.approx(0.05**2, rel=1e-4)
    assert ratio_hard == pytest.approx(0.7**2, rel=1e-4)


def test_focal_loss_round_trips_through_its_config() -> None:
    loss = BinaryFocalLoss(alpha=0.6, gamma=1.5, from_logits=True, reduction="sum")
    clone = BinaryFocalLoss.from_config(loss.get_config())
    assert (clone.alpha, clone.gamma, clone.from_logits, clone.reduction) == (0.6, 1.5, True, "sum")
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, BinaryFocalLoss) and again.gamma == 1.5


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [({"alpha": 1.5}, ValueError, "alpha"), ({"alpha": "x"}, TypeError, "alpha"),
     ({"gamma": -1.0}, ValueError, "gamma"), ({"gamma": None}, TypeError, "gamma")],
)
def test_focal_loss_rejects_bad_arguments(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        BinaryFocalLoss(**kwargs)


def test_focal_loss_works_in_compile_and_fit() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 2)).astype(np.float32)
    y = (x[:, :1] + x[:, 1:] > 0).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  loss=BinaryFocalLoss(0.5, 2.0, from_logits=True))
    history = model.fit(x, y, batch_size=32, epochs=10, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


def test_weighted_mse_with_unit_weights_is_mse() -> None:
    rng = np.random.default_rng(1)
    y, y_pred = rng.normal(size=(2, 50, 3)).astype(np.float32)
    expected = keras.losses.MeanSquaredError()(y, y_pred)
    assert float(WeightedMeanSquaredError([1.0, 1.0, 1.0])(y, y_pred)) == pytest.approx(
        float(expected), rel=1e-6
    )


def test_weighted_mse_weights_each_output() -> None:
    y = np.zeros((4, 2), dtype=np.float32)
    y_pred = np.tile(np.array([[1.0, 2.0]], dtype=np.float32), (4, 1))
    # mean over outputs of w * err^2: (3 * 1 + 0.5 * 4) / 2
    assert float(WeightedMeanSquaredError([3.0, 0.5])(y, y_pred)) == pytest.approx(2.5)
    config = WeightedMeanSquaredError([3.0, 0.5]).get_config()
    assert WeightedMeanSquaredError.from_config(config).weights == [3.0, 0.5]


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([], "must not be empty"),
        ([1.0, -1.0], r"weights\[1\] must be a number in \[0, inf\), got -1.0"),
        ([0.0, 0.0], "must not all be 0"),
    ],
)
def test_weighted_mse_rejects_bad_weights(weights, message) -> None:
    with pytest.raises(ValueError, match=message):
        WeightedMeanSquaredError(weights)


def test_weighted_mse_rejects_a_wrong_number_of_outputs() -> None:
    with pytest.raises(ValueError, match="2 weights but the predictions have 3 outputs"):
        WeightedMeanSquaredError([1.0, 1.0])(np.zeros((4, 3)), np.zeros((4, 3), dtype=np.float32))
