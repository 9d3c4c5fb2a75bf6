"""Chapter 8: a GAN for 8x8 digits, trained by ``fit()`` through a custom ``train_step``.

:class:`GAN` overrides ``compile()`` (two optimizers and one loss) and
``train_step()``.  The step is split in two methods, :meth:`GAN.discriminator_step`
and :meth:`GAN.generator_step`, each of which updates only its own network's
weights; the tests check exactly that.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tutorial_helpers.validation import check_positive_int

IMAGE_SHAPE = (8, 8, 1)


def build_generator(latent_dim: int = 32, name: str = "generator") -> keras.Sequential:
    """Latent vector -> 4x4x64 -> transposed convolution to 8x8x32 -> 8x8x1 in ``[-1, 1]`` (tanh)."""
    latent_dim = check_positive_int(latent_dim, "latent_dim")
    return keras.Sequential(
        [
            keras.Input((latent_dim,)),
            keras.layers.Dense(4 * 4 * 64),
            keras.layers.LeakyReLU(negative_slope=0.2),
            keras.layers.Reshape((4, 4, 64)),
            keras.layers.Conv2DTranspose(32, 4, strides=2, padding="same"),
            keras.layers.LeakyReLU(negative_slope=0.2),
            keras.layers.Conv2D(1, 3, padding="same", activation="tanh"),
        ],
        name=name,
    )


def build_discriminator(name: str = "discriminator") -> keras.Sequential:
    """8x8x1 image -> two strided convolutions -> one logit (real > 0 > fake)."""
    return keras.Sequential(
        [
            keras.Input(IMAGE_SHAPE),
            keras.layers.Conv2D(32, 3, strides=2, padding="same"),
            keras.layers.LeakyReLU(negative_slope=0.2),
            keras.layers.Conv2D(64, 3, strides=2, padding="same"),
            keras.layers.LeakyReLU(negative_slope=0.2),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(1),
        ],
        name=name,
    )


class GAN(keras.Model):
    """A generator and a discriminator trained against each other by ``fit()``.

    ``compile(d_optimizer=..., g_optimizer=..., loss_fn=...)`` takes one optimizer
    per network and a loss on logits (binary cross-entropy with
    ``from_logits=True``).  ``fit(images)`` takes a dataset of real images of
    shape ``(batch, 8, 8, 1)``; labels, if any, are ignored.  Reports ``d_loss``
    and ``g_loss`` per epoch.
    """

    def __init__(
        self,
        discriminator: keras.Model,
        generator: keras.Model,
        latent_dim: int,
        label_noise: float = 0.05,
        seed: int = 1337,
    ) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.label_noise = float(label_noise)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.d_loss_tracker, self.g_loss_tracker]

    def compile(
        self,
        d_optimizer: keras.optimizers.Optimizer | None = None,
        g_optimizer: keras.optimizers.Optimizer | None = None,
        loss_fn: keras.losses.Loss | None = None,
        **kwargs,
    ) -> None:
        for name, value in (("d_optimizer", d_optimizer), ("g_optimizer", g_optimizer)):
            if not isinstance(value, keras.optimizers.Optimizer):
                raise TypeError(
                    f"GAN.compile() needs {name}, a keras.optimizers.Optimizer "
                    f"(one per network), got {type(value).__name__}"
                )
        if d_optimizer is g_optimizer:
            raise ValueError("d_optimizer and g_optimizer must be two different optimizer objects")
        if loss_fn is None or not callable(loss_fn):
            raise TypeError("GAN.compile() needs loss_fn, e.g. BinaryCrossentropy(from_logits=True)")
        super().compile(**kwargs)
        self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn

    def call(self, latent: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Generate images from latent vectors."""
        return self.generator(latent, training=training)

    def _latent(self, batch_size: tf.Tensor) -> tf.Tensor:
        return keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)

    def discriminator_step(self, real_images: tf.Tensor) -> tf.Tensor:
        """Update the discriminator only: real images labelled 1, generated ones 0, with noisy labels."""
        batch_size = tf.shape(real_images)[0]
        fake_images = self.generator(self._latent(batch_size), training=False)
        images = tf.concat([real_images, fake_images], axis=0)
        labels = tf.concat([tf.ones((batch_size, 1)), tf.zeros((batch_size, 1))], axis=0)
        # Label noise keeps the discriminator from becoming certain too fast.
        labels += self.label_noise * keras.random.uniform(tf.shape(labels), seed=self.seed_generator)
        labels = tf.clip_by_value(labels, 0.0, 1.0)
        with tf.GradientTape() as tape:
            loss = self.loss_fn(labels, self.discriminator(images, training=True))
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply(tape.gradient(loss, weights), weights)
        return loss

    def generator_step(self, batch_size: tf.Tensor) -> tf.Tensor:
        """Update the generator only: make the discriminator call its images real (label 1)."""
        misleading_labels = tf.ones((batch_size, 1))
        with tf.GradientTape() as tape:
            fake_images = self.generator(self._latent(batch_size), training=True)
            loss = self.loss_fn(misleading_labels, self.discriminator(fake_images, training=False))
        weights = self.generator.trainable_weights
        self.g_optimizer.apply(tape.gradient(loss, weights), weights)
        return loss

    def train_step(self, data):
        real_images = data[0] if isinstance(data, tuple) else data
        if tuple(real_images.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(
                f"GAN.fit expects batches of images of shape (batch, {', '.join(map(str, IMAGE_SHAPE))}),"
                f" got {tuple(real_images.shape)}"
            )
        d_loss = self.discriminator_step(real_images)
        g_loss = self.generator_step(tf.shape(real_images)[0])
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}


def generate(generator: keras.Model, latent: np.ndarray) -> np.ndarray:
    """Images from a fixed latent batch, in inference mode, as a NumPy array."""
    return np.asarray(generator(latent, training=False))


class ImageGridCallback(keras.callbacks.Callback):
    """Every ``every`` epochs, generate images from one *fixed* latent batch and keep them.

    The same latent vectors every time, so successive grids show the generator
    improving, not new random draws.  ``self.grids`` maps epoch number (1-based)
    to an array of images.
    """

    def __init__(self, latent: np.ndarray, every: int = 5) -> None:
        super().__init__()
        self.latent = np.asarray(latent, dtype=np.float32)
        self.every = check_positive_int(every, "every")
        self.grids: dict[int, np.ndarray] = {}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self.every == 0:
            self.grids[epoch + 1] = generate(self.model.generator, self.latent)


class DigitJudge:
    """An honest, cheap measure of generated digits: what a real-digit classifier thinks of them.

    A logistic-regression classifier is trained on the real digits (in the same
    ``[-1, 1]`` scale as the generator's output).  :meth:`score` reports, for a
    batch of images, the classifier's mean confidence (its highest class
    probability), the fraction of images it classifies with confidence at least
    ``threshold``, and how many of the 10 classes appear among those confident
    predictions (mode coverage: a collapsed generator draws only a few digits).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, regularization: float = 0.1) -> None:
        from sklearn.linear_model import LogisticRegression

        images = np.asarray(images, dtype=np.float32)
        if images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"images must have shape (n, 8, 8, 1), got {images.shape}")
        self.classifier = LogisticRegression(C=regularization, max_iter=5000)
        self.classifier.fit(images.reshape(len(images), -1), labels)

    def score(self, images: np.ndarray, threshold: float = 0.9) -> dict[str, float]:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"images must have shape (n, 8, 8, 1), got {images.shape}")
        probabilities = self.classifier.predict_proba(images.reshape(len(images), -1))
        confidence = probabilities.max(axis=1)
        predicted = probabilities.argmax(axis=1)
        confident = confidence >= threshold
        return {
            "confidence": float(confidence.mean()),
            "confident_fraction": float(confident.mean()),
            "classes_covered": len(set(predicted[confident].tolist())),
        }
