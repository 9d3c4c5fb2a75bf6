"""Chapter 9's WGAN-GP helpers against hand computations: interpolation, penalty, double backprop, losses."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers import wgan

IMAGE = (8, 8, 1)


class LinearCritic:
    """``f(x) = sum(w * x)`` per sample: its input gradient is ``w`` everywhere."""

    def __init__(self, w: np.ndarray) -> None:
        self.w = tf.Variable(w)
        self.training: list[bool] = []

    def __call__(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        self.training.append(training)
        return tf.reduce_sum(self.w * x, axis=list(range(1, len(x.shape))))


def quadratic_critic(x: tf.Tensor, training: bool = False) -> tf.Tensor:
    """``f(x) = 0.5 * sum(x^2)`` per sample: its input gradient is ``x``."""
    return 0.5 * tf.reduce_sum(tf.square(x), axis=list(range(1, len(x.shape))))


def with_norm(norm: float, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=shape)
    return (v / np.linalg.norm(v) * norm).astype(np.float32)


def batch(n: int = 6, shape: tuple[int, ...] = IMAGE, seed: int = 1) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n, *shape)).astype(np.float32)
    fake = rng.normal(size=(n, *shape)).astype(np.float32)
    return real, fake, rng.uniform(size=n).astype(np.float32)


def small_critic(dtype: str = "float32") -> keras.Sequential:
    """Smooth (tanh), so finite differences are accurate; no sigmoid: a critic scores, not classifies."""
    return keras.Sequential(
        [
            keras.Input(IMAGE, dtype=dtype),
            keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="tanh", dtype=dtype),
            keras.layers.Flatten(dtype=dtype),
            keras.layers.Dense(8, activation="tanh", dtype=dtype),
            keras.layers.Dense(1, dtype=dtype),
        ]
    )


def test_interpolate_against_numpy() -> None:
    real, fake, _ = batch(4)
    np.testing.assert_array_equal(wgan.interpolate(real, fake, np.ones(4, np.float32)), real)
    np.testing.assert_array_equal(wgan.interpolate(real, fake, np.zeros(4, np.float32)), fake)
    np.testing.assert_allclose(wgan.interpolate(real, fake, np.full(4, 0.25)), 0.25 * real + 0.75 * fake,
                               rtol=0, atol=1e-6)  # a float64 alpha is cast to the images' dtype
    alpha = np.array([0.0, 0.25, 0.5, 1.0], np.float32)  # one weight per sample, not per pixel
    expected = alpha[:, None, None, None] * real + (1 - alpha[:, None, None, None]) * fake
    np.testing.assert_allclose(wgan.interpolate(real, fake, alpha), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("norm", [0.3, 1.0, 2.5])
def test_linear_critic_penalty_is_norm_of_w_minus_one_squared(norm: float) -> None:
    w = with_norm(norm, (5,))
    expected = (np.linalg.norm(w.astype(np.float64)) - 1.0) ** 2
    for seed in range(3):  # any alpha, any real and fake: the gradient is w everywhere
        real, fake, alpha = batch(7, (5,), seed=seed)
        critic = LinearCritic(w)
        penalty = float(wgan.gradient_penalty(critic, real, fake, alpha))
        assert penalty == pytest.approx(expected, abs=1e-6)
        assert critic.training == [True]  # called once, in training mode
    if norm == 1.0:
        assert penalty < 1e-10


def test_quadratic_critic_penalty_on_images() -> None:
    real, fake, alpha = batch(8)
    real, fake = 0.1 * real, 0.2 * fake  # norms of x_hat on both sides of 1
    x_hat = alpha[:, None, None, None].astype(np.float64) * real + (1 - alpha[:, None, None, None]) * fake
    norms = np.sqrt((x_hat.astype(np.float64) ** 2).sum(axis=(1, 2, 3)) + 1e-12)
    assert norms.min() < 1 < norms.max()
    penalty = float(wgan.gradient_penalty(quadratic_critic, real, fake, alpha))
    assert penalty == pytest.approx(np.mean((norms - 1.0) ** 2), abs=1e-6)


def test_double_backprop_through_the_penalty_and_tf_function() -> None:
    real, fake, alpha = batch(5, IMAGE)
    for norm in (0.5, 2.0):
        critic = LinearCritic(with_norm(norm, IMAGE, seed=3))
        with tf.GradientTape() as tape:
            penalty = wgan.gradient_penalty(critic, real, fake, alpha)
        w = critic.w.numpy().astype(np.float64)
        length = np.linalg.norm(w)
        expected = 2.0 * (length - 1.0) * w / length
        np.testing.assert_allclose(tape.gradient(penalty, critic.w), expected, rtol=0, atol=1e-5)

    flat = LinearCritic(np.zeros(IMAGE, np.float32))  # a zero input gradient: the 1e-12 keeps this finite
    with tf.GradientTape() as tape:
        penalty = wgan.gradient_penalty(flat, real, fake, alpha)
    assert float(penalty) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(tape.gradient(penalty, flat.w), np.zeros(IMAGE, np.float32))

    spec = tf.TensorSpec((None, *IMAGE), tf.float32)  # unknown batch: the static checks must let it pass

    @tf.function(input_signature=[spec, spec, tf.TensorSpec((None,), tf.float32)])
    def penalty_and_gradient(real, fake, alpha):
        with tf.GradientTape() as tape:
            penalty = wgan.gradient_penalty(critic, real, fake, alpha)
        return penalty, tape.gradient(penalty, critic.w)

    penalty, gradient = penalty_and_gradient(real, fake, alpha)
    assert float(penalty) == pytest.approx((length - 1.0) ** 2, abs=1e-6)
    np.testing.assert_allclose(gradient, expected, rtol=0, atol=1e-5)


def test_keras_critic_penalty_matches_finite_differences() -> None:
    keras.utils.set_random_seed(0)
    critic = small_critic("float64")
    real, fake, alpha = (a.astype(np.float64) for a in batch(1))
    x_hat = alpha[0] * real[0] + (1 - alpha[0]) * fake[0]
    step = 1e-5
    offsets = step * np.eye(x_hat.size).reshape(-1, *IMAGE)
    scores = critic(np.concatenate([x_hat + offsets, x_hat - offsets]), training=True).numpy()[:, 0]
    gradient = (scores[: x_hat.size] - scores[x_hat.size :]) / (2 * step)
    expected = (np.sqrt((gradient**2).sum() + 1e-12) - 1.0) ** 2
    penalty = float(wgan.gradient_penalty(critic, real, fake, alpha))
    # measured: |difference| <= 2e-12 in float64 for three seeds (central differences, error ~ step^2)
    assert penalty == pytest.approx(expected, abs=1e-9)

    critic32 = small_critic()
    real, fake, alpha = batch(8)
    with tf.GradientTape() as tape:
        penalty = wgan.gradient_penalty(critic32, real, fake, alpha)
    assert np.isfinite(float(penalty)) and float(penalty) >= 0.0
    kernels = [w for w in critic32.trainable_weights if "kernel" in w.path]
    for kernel, grad in zip(kernels, tape.gradient(penalty, kernels), strict=True):
        assert grad is not None and np.all(np.isfinite(grad)) and np.any(grad.numpy() != 0), kernel.path


def test_wasserstein_losses_against_numpy() -> None:
    rng = np.random.default_rng(2)
    real_scores, fake_scores = rng.normal(size=(10, 1)), rng.normal(size=(10, 1))
    assert float(wgan.critic_loss(real_scores, fake_scores)) == pytest.approx(
        fake_scores.mean() - real_scores.mean(), abs=1e-12)
    assert float(wgan.generator_loss(fake_scores)) == pytest.approx(-fake_scores.mean(), abs=1e-12)


def test_bad_input_names_the_argument() -> None:
    real, fake, alpha = batch(4)
    critic = LinearCritic(with_norm(1.0, IMAGE))
    with pytest.raises(ValueError, match=r"^fake must have the shape of real"):
        wgan.gradient_penalty(critic, real, fake[:3], alpha)
    with pytest.raises(ValueError, match=r"^fake must"):
        wgan.interpolate(real, fake[..., 0], alpha)
    for bad_alpha in (alpha[:3], alpha[:, None], alpha[:, None, None, None], np.float32(0.5)):
        with pytest.raises(ValueError, match=r"^alpha must have shape \(batch,\)"):
            wgan.gradient_penalty(critic, real, fake, bad_alpha)
    with pytest.raises(ValueError, match=r"^alpha must"):
        wgan.interpolate(real, fake, alpha[:2])
    for bad_critic in (None, "critic", 3):
        with pytest.raises(TypeError, match=r"^critic must be callable"):
            wgan.gradient_penalty(bad_critic, real, fake, alpha)
    with pytest.raises(ValueError, match=r"^real must"):
        wgan.interpolate(np.float32(1.0), np.float32(0.0), alpha)
