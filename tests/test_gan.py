"""Chapter 8's GAN: each half of the step updates only its own network, and training beats noise."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers import data, gan
from tutorial_helpers.runtime import set_seed

LATENT = 16


def new_gan(seed: int = 0) -> gan.GAN:
    set_seed(seed)
    model = gan.GAN(gan.build_discriminator(), gan.build_generator(LATENT), LATENT, seed=seed)
    model.compile(d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                  g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                  loss_fn=keras.losses.BinaryCrossentropy(from_logits=True))
    return model


@pytest.fixture(scope="module")
def digits():
    return data.load_digit_images()


def snapshot(model: keras.Model) -> list[np.ndarray]:
    return [w.copy() for w in model.get_weights()]


def changed(before: list[np.ndarray], model: keras.Model) -> bool:
    return any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_load_digit_images(digits) -> None:
    images, labels = digits
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.float32
    assert images.min() == -1.0 and images.max() == 1.0
    assert set(labels.tolist()) == set(range(10))
    with pytest.raises(ValueError, match="low must be < high"):
        data.load_digit_images(1.0, 0.0)


def test_each_half_step_updates_only_its_own_network(digits) -> None:
    images, _ = digits
    model = new_gan()
    real = tf.constant(images[:32])
    g_before, d_before = snapshot(model.generator), snapshot(model.discriminator)
    model.discriminator_step(real)
    assert not changed(g_before, model.generator), "the discriminator step moved the generator"
    assert changed(d_before, model.discriminator), "the discriminator step did not train it"
    g_before, d_before = snapshot(model.generator), snapshot(model.discriminator)
    model.generator_step(32)
    assert not changed(d_before, model.discriminator), "the generator step moved the discriminator"
    assert changed(g_before, model.generator), "the generator step did not train it"


def test_a_full_train_step_updates_both(digits) -> None:
    images, _ = digits
    model = new_gan()
    g_before, d_before = snapshot(model.generator), snapshot(model.discriminator)
    logs = model.train_step(tf.constant(images[:32]))
    assert set(logs) == {"d_loss", "g_loss"} and np.isfinite(float(logs["d_loss"]))
    assert changed(g_before, model.generator) and changed(d_before, model.discriminator)


def test_generated_images_have_the_data_shape_and_range() -> None:
    model = new_gan()
    images = gan.generate(model.generator, np.random.default_rng(0).normal(size=(20, LATENT)))
    assert images.shape == (20, 8, 8, 1)
    assert images.min() >= -1.0 and images.max() <= 1.0


def test_fixed_latent_grid_is_reproducible(digits) -> None:
    images, _ = digits
    dataset = tf.data.Dataset.from_tensor_slices(images[:256]).batch(64)
    latent = np.random.default_rng(3).normal(size=(12, LATENT)).astype(np.float32)
    grids = []
    for _ in range(2):
        model = new_gan(seed=5)
        callback = gan.ImageGridCallback(latent, every=1)
        model.fit(dataset, epochs=2, callbacks=[callback], shuffle=False, verbose=0)
        assert sorted(callback.grids) == [1, 2]
        grids.append(callback.grids[2])
    np.testing.assert_array_equal(grids[0], grids[1])


def test_short_training_beats_random_noise(digits) -> None:
    images, labels = digits
    judge = gan.DigitJudge(images, labels)
    model = new_gan()
    dataset = tf.data.Dataset.from_tensor_slices(images).shuffle(len(images), seed=0).batch(64)
    model.fit(dataset, epochs=10, shuffle=False, verbose=0)
    rng = np.random.default_rng(0)
    generated = judge.score(gan.generate(model.generator, rng.normal(size=(500, LATENT))))
    noise = judge.score(rng.uniform(-1, 1, size=(500, 8, 8, 1)))
    real = judge.score(images[:500])
    assert generated["confidence"] > noise["confidence"] + 0.05
    assert generated["classes_covered"] > noise["classes_covered"]
    assert real["confidence"] > generated["confidence"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"g_optimizer": keras.optimizers.Adam(), "loss_fn": keras.losses.BinaryCrossentropy()},
         TypeError, "needs d_optimizer"),
        ({"d_optimizer": keras.optimizers.Adam(), "loss_fn": keras.losses.BinaryCrossentropy()},
         TypeError, "needs g_optimizer"),
        ({"d_optimizer": keras.optimizers.Adam(), "g_optimizer": keras.optimizers.Adam()},
         TypeError, "needs loss_fn"),
    ],
)
def test_compile_without_what_it_needs_is_a_clear_error(kwargs, error, message) -> None:
    model = gan.GAN(gan.build_discriminator(), gan.build_generator(LATENT), LATENT)
    with pytest.raises(error, match=message):
        model.compile(**kwargs)


def test_one_optimizer_for_both_networks_is_refused() -> None:
    shared = keras.optimizers.Adam()
    model = gan.GAN(gan.build_discriminator(), gan.build_generator(LATENT), LATENT)
    with pytest.raises(ValueError, match="two different optimizer"):
        model.compile(d_optimizer=shared, g_optimizer=shared, loss_fn=keras.losses.BinaryCrossentropy())


def test_data_of_the_wrong_shape_is_a_clear_error() -> None:
    model = new_gan()
    wrong = tf.data.Dataset.from_tensor_slices(np.zeros((64, 28, 28, 1), np.float32)).batch(32)
    with pytest.raises(ValueError, match=r"shape \(batch, 8, 8, 1\), got \(None, 28, 28, 1\)"):
        model.fit(wrong, epochs=1, shuffle=False, verbose=0)


def test_judge_rejects_wrong_shapes(digits) -> None:
    images, labels = digits
    judge = gan.DigitJudge(images[:200], labels[:200])
    with pytest.raises(ValueError, match="shape"):
        judge.score(np.zeros((5, 64)))
