"""Chapter 9: the Wasserstein GAN with gradient penalty (WGAN-GP, Gulrajani et al. 2017).

The critic outputs an unbounded score (no sigmoid).  It is trained to score
real images above generated ones (:func:`critic_loss`) while its gradient with
respect to its input is kept near norm 1 on points between real and generated
images (:func:`gradient_penalty`, weighted by ``lambda``, 10 in the paper, by
the caller).  The generator is trained to raise its images' score
(:func:`generator_loss`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

Array = tf.Tensor | np.ndarray


def _shape(value: object) -> tf.TensorShape:
    return tf.TensorShape(value.shape if hasattr(value, "shape") else np.shape(value))


def _check_shapes(real: Array, fake: Array, alpha: Array) -> None:
    """Static shape checks only (unknown dimensions pass), so they cost nothing in a ``tf.function``."""
    real_shape, fake_shape, alpha_shape = _shape(real), _shape(fake), _shape(alpha)
    if real_shape.rank is None or real_shape.rank < 1:
        raise ValueError(f"real must be a batch with a known number of axes, got shape {real_shape}")
    if not fake_shape.is_compatible_with(real_shape):
        raise ValueError(f"fake must have the shape of real, {real_shape}, got {fake_shape}")
    if not alpha_shape.is_compatible_with([real_shape[0]]):
        raise ValueError(
            f"alpha must have shape (batch,) = ({real_shape[0]},), one mixing weight per sample, "
            f"got {alpha_shape}"
        )


def _check_arguments(critic: object, real: Array, fake: Array, alpha: Array) -> None:
    if not callable(critic):
        raise TypeError(f"critic must be callable (a keras.Model), got {type(critic).__name__}")
    _check_shapes(real, fake, alpha)


def _interpolate(real: Array, fake: Array, alpha: Array) -> tf.Tensor:
    real = tf.convert_to_tensor(real)
    alpha = tf.reshape(tf.cast(alpha, real.dtype), [-1] + [1] * (len(real.shape) - 1))
    return alpha * real + (1.0 - alpha) * fake


def interpolate(real: Array, fake: Array, alpha: Array) -> tf.Tensor:
    """``x_hat = alpha * real + (1 - alpha) * fake``, one ``alpha`` per sample.

    ``alpha`` has shape ``(batch,)`` and is broadcast over the other axes (it is
    cast to ``real``'s dtype, so a float64 NumPy ``alpha`` works with float32
    images).  ``alpha = 1`` gives ``real``, ``alpha = 0`` gives ``fake``.
    """
    _check_shapes(real, fake, alpha)
    return _interpolate(real, fake, alpha)


def gradient_penalty(
    critic: Callable[..., tf.Tensor], real: Array, fake: Array, alpha: Array
) -> tf.Tensor:
    """WGAN-GP's penalty (Gulrajani et al. 2017): the batch mean of ``(||grad_x critic(x_hat)||_2 - 1)^2``.

    ``x_hat = interpolate(real, fake, alpha)``, the norm is taken over all
    non-batch axes, as ``tf.sqrt(tf.reduce_sum(tf.square(g), axis=non_batch_axes) + 1e-12)``
    (the ``1e-12`` keeps the norm's own gradient finite where ``g`` is 0).
    ``critic`` is called as ``critic(x_hat, training=True)``.  The penalty
    weight ``lambda`` (10 in the paper) is applied by the caller.

    Works inside a ``tf.function`` and inside an outer ``tf.GradientTape``: the
    penalty depends on the critic's weights through the input gradient, so the
    outer tape differentiates that gradient again (double backprop).
    """
    _check_arguments(critic, real, fake, alpha)
    x_hat = _interpolate(real, fake, alpha)
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = critic(x_hat, training=True)
    grads = tape.gradient(scores, x_hat)
    axes = list(range(1, len(grads.shape)))
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=axes) + 1e-12)
    return tf.reduce_mean(tf.square(norms - 1.0))


def critic_loss(real_scores: Array, fake_scores: Array) -> tf.Tensor:
    """The critic's Wasserstein loss, ``mean(fake_scores) - mean(real_scores)``.

    Minimising it raises the scores of real images and lowers those of
    generated ones; its negative estimates the Wasserstein distance between the
    two distributions (for a 1-Lipschitz critic).  Add ``lambda * gradient_penalty``.
    """
    return tf.reduce_mean(fake_scores) - tf.reduce_mean(real_scores)


def generator_loss(fake_scores: Array) -> tf.Tensor:
    """The generator's Wasserstein loss, ``-mean(fake_scores)``: raise the critic's score of its images."""
    return -tf.reduce_mean(fake_scores)
