"""Chapter 9: a GAN for 8x8 digits, trained by ``fit()`` through a custom ``train_step``.

:class:`GAN` overrides ``compile()`` (two optimizers and one loss) and
``train_step()``.  The step is split in two methods, :meth:`GAN.discriminator_step`
and :meth:`GAN.generator_step`, each of which updates only its own network's
weights; the tests check exactly that.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tutorial_helpers.validation import check_number, check_positive_int

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


def _outputs_probabilities(model: keras.Model) -> bool | None:
    """Whether ``model`` ends in a sigmoid (probabilities), ``False`` if in a plain ``Dense`` (logits)."""
    layers = getattr(model, "layers", None)
    if not layers:
        return None
    activation = getattr(layers[-1], "activation", None)
    if activation is None:
        return None
    return getattr(activation, "__name__", "") == "sigmoid"


def _check_loss_matches_discriminator(loss_fn: object, discriminator: keras.Model) -> None:
    """Refuse a probability loss on a logit output, and the reverse: both train on nonsense silently."""
    get_config = getattr(loss_fn, "get_config", None)
    from_logits = get_config().get("from_logits") if callable(get_config) else None
    probabilities = _outputs_probabilities(discriminator)
    if from_logits is None or probabilities is None:
        return
    if not from_logits and not probabilities:
        raise ValueError(
            "the discriminator outputs logits (its last layer has no sigmoid), but loss_fn expects "
            "probabilities: use keras.losses.BinaryCrossentropy(from_logits=True)"
        )
    if from_logits and probabilities:
        raise ValueError(
            "the discriminator ends in a sigmoid (probabilities), but loss_fn expects logits "
            "(from_logits=True): remove the sigmoid (preferred) or use from_logits=False"
        )


class GAN(keras.Model):
    """A generator and a discriminator trained against each other by ``fit()``.

    ``compile(d_optimizer=..., g_optimizer=..., loss_fn=...)`` takes one optimizer
    per network and a loss on logits (binary cross-entropy with
    ``from_logits=True``).  ``fit(images)`` takes a dataset of real images of
    shape ``(batch, 8, 8, 1)``; labels, if any, are ignored.  Reports ``d_loss``
    and ``g_loss`` per epoch.

    ``real_label`` is the discriminator's target for real images: 0.9 by
    default, *one-sided label smoothing* (Salimans et al., 2016), which keeps the
    discriminator from growing certain about real images, and so keeps the
    generator's gradient alive.  Generated images keep the target 0: smoothing
    them too would reward the discriminator for calling some fakes real.
    """

    def __init__(
        self,
        discriminator: keras.Model,
        generator: keras.Model,
        latent_dim: int,
        real_label: float = 0.9,
        seed: int = 1337,
    ) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.real_label = check_number(real_label, "real_label", minimum=0.5, maximum=1.0,
                                       exclusive_minimum=True)
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
        if loss_fn is None or isinstance(loss_fn, str) or not callable(loss_fn):
            raise TypeError(
                "GAN.compile() needs loss_fn, a loss object such as "
                f"keras.losses.BinaryCrossentropy(from_logits=True), got {loss_fn!r}"
            )
        _check_loss_matches_discriminator(loss_fn, self.discriminator)
        super().compile(**kwargs)
        self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn

    def call(self, latent: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Generate images from latent vectors."""
        return self.generator(latent, training=training)

    def _latent(self, batch_size: tf.Tensor) -> tf.Tensor:
        return keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)

    def discriminator_step(self, real_images: tf.Tensor) -> tf.Tensor:
        """Update the discriminator only: real images labelled ``real_label``, generated ones 0."""
        batch_size = tf.shape(real_images)[0]
        fake_images = self.generator(self._latent(batch_size), training=False)
        images = tf.concat([real_images, fake_images], axis=0)
        labels = tf.concat(
            [tf.fill((batch_size, 1), self.real_label), tf.zeros((batch_size, 1))], axis=0
        )
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


def make_checkpoint(model: GAN) -> tf.train.Checkpoint:
    """A checkpoint of everything a GAN's training state holds, for an exact resume.

    Both networks with all their variables (the discriminator's dropout keeps
    its random-generator state there), both optimizers, and the state of the
    seed generator that draws the latent vectors.  Restoring it into a GAN
    built the same way and training on continues exactly as the original would.
    """
    if not isinstance(model, GAN):
        raise TypeError(f"model must be a gan.GAN, got {type(model).__name__}")
    if not hasattr(model, "d_optimizer"):
        raise ValueError("compile the GAN before making its checkpoint: the optimizers belong in it")
    return tf.train.Checkpoint(
        generator=model.generator,
        discriminator=model.discriminator,
        generator_variables=list(model.generator.variables),
        discriminator_variables=list(model.discriminator.variables),
        g_optimizer=model.g_optimizer,
        d_optimizer=model.d_optimizer,
        latent_seed=model.seed_generator.state,
    )


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

    The real digits are split (with ``seed``) into three parts: a logistic
    regression is trained on half of them (in the same ``[-1, 1]`` scale as the
    generator's output); a quarter is the *reference* the generated images are
    compared with; the last quarter, :attr:`held_out`, is real digits the
    classifier never saw, the honest ceiling for any generator.

    :meth:`score` reports, for a batch of images:

    * ``confidence``: the classifier's mean highest class probability, and
      ``confident_fraction``, the share of images at least ``threshold`` sure;
    * ``classes_covered``: how many of the 10 classes appear among the
      confident predictions;
    * ``class_balance``: the entropy of the predicted classes divided by
      ``log(10)``: 1 when every digit is drawn equally often, 0 when one digit
      is drawn every time (mode collapse);
    * ``distance``: the Fréchet distance between Gaussians fitted to the
      classifier's 10 class scores (logits) of the images and of the reference
      digits.  Lower is better; it grows when the images are unlike real
      digits *and* when they are too alike each other.

    Confidence alone rewards collapse (one clean digit repeated is very
    confident); balance and distance do not.
    """

    def __init__(
        self, images: np.ndarray, labels: np.ndarray, regularization: float = 0.1, seed: int = 0
    ) -> None:
        from sklearn.linear_model import LogisticRegression

        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"images must have shape (n, 8, 8, 1), got {images.shape}")
        labels = np.asarray(labels)
        if labels.shape != (len(images),):
            raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
        if len(images) < 40:
            raise ValueError(f"the judge needs at least 40 real images, got {len(images)}")
        order = np.random.default_rng(seed).permutation(len(images))
        train, reference, held_out = np.array_split(order, [len(order) // 2, 3 * len(order) // 4])
        self.classifier = LogisticRegression(
            C=check_number(regularization, "regularization", minimum=0.0, exclusive_minimum=True),
            max_iter=5000,
        )
        self.classifier.fit(_flat(images[train]), labels[train])
        #: indices of the images used to train the classifier, as the reference, and held out
        self.split = {"train": train, "reference": reference, "held_out": held_out}
        self._reference = self._features(images[reference])
        #: real digits neither used to train the classifier nor as the reference
        self.held_out = images[held_out]
        self.held_out_labels = labels[held_out]

    def _features(self, images: np.ndarray) -> np.ndarray:
        return self.classifier.decision_function(_flat(images)).astype(np.float64)

    def score(self, images: np.ndarray, threshold: float = 0.9) -> dict[str, float]:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"images must have shape (n, 8, 8, 1), got {images.shape}")
        if len(images) < 2:
            raise ValueError("score needs at least 2 images")
        threshold = check_number(threshold, "threshold", minimum=0.0, maximum=1.0)
        probabilities = self.classifier.predict_proba(_flat(images))
        confidence = probabilities.max(axis=1)
        predicted = probabilities.argmax(axis=1)
        confident = confidence >= threshold
        shares = np.bincount(predicted, minlength=10) / len(predicted)
        shares = shares[shares > 0]
        return {
            "confidence": float(confidence.mean()),
            "confident_fraction": float(confident.mean()),
            "classes_covered": len(set(predicted[confident].tolist())),
            "class_balance": float(abs((shares * np.log(shares)).sum()) / np.log(10)),
            "distance": frechet_distance(self._features(images), self._reference),
        }


def _flat(images: np.ndarray) -> np.ndarray:
    return images.reshape(len(images), -1)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` and ``b`` (same width).

    ``|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))``: 0 for identical
    distributions, larger when the means or the spreads differ.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"a and b must be (n, d) arrays of equal d with n >= 2, got {a.shape} and {b.shape}")
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # tr((C_a C_b)^(1/2)) = sum of the square roots of the eigenvalues of the
    # symmetric S C_b S, with S = C_a^(1/2): stable even when C_a is singular
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0.0, None)).sum()
    distance = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * cross
    return float(max(distance, 0.0))
