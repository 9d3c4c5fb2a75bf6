"""Chapter 9's GAN: each half of the step updates only its own network, and training beats noise."""

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


class FlippedLabels(keras.losses.Loss):
    """Binary cross-entropy on logits with every label flipped: the classic swapped-label bug."""

    def call(self, y_true, y_pred):
        return keras.losses.binary_crossentropy(1.0 - y_true, y_pred, from_logits=True)


def realness_gap_after_discriminator_steps(model: gan.GAN, images: np.ndarray, steps: int = 5) -> float:
    """How much the discriminator's logit gap (real minus fake) grows in ``steps`` of its own updates."""
    real = tf.constant(images[:64])
    fake = model.generator(np.random.default_rng(0).normal(size=(64, LATENT)).astype(np.float32))

    def gap() -> float:
        return float(tf.reduce_mean(model.discriminator(real)) - tf.reduce_mean(model.discriminator(fake)))

    before = gap()
    for _ in range(steps):
        model.discriminator_step(real)
    return gap() - before


def realness_of_fakes_after_generator_steps(model: gan.GAN, steps: int = 20) -> float:
    """How much the discriminator's logit on a fixed batch of fakes grows in ``steps`` generator updates."""
    latent = tf.constant(np.random.default_rng(1).normal(size=(64, LATENT)).astype(np.float32))

    def realness() -> float:
        return float(tf.reduce_mean(model.discriminator(model.generator(latent))))

    before = realness()
    for _ in range(steps):
        model.generator_step(64)
    return realness() - before


def flipped_gan() -> gan.GAN:
    model = new_gan()
    model.compile(d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                  g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5), loss_fn=FlippedLabels())
    return model


def test_the_discriminator_learns_to_tell_real_from_fake(digits) -> None:
    images, _ = digits
    assert realness_gap_after_discriminator_steps(new_gan(), images) > 0.05
    # the same measure catches swapped labels: the gap then shrinks
    assert realness_gap_after_discriminator_steps(flipped_gan(), images) < -0.05


def test_the_generator_learns_to_fool_the_discriminator() -> None:
    assert realness_of_fakes_after_generator_steps(new_gan()) > 0.05
    assert realness_of_fakes_after_generator_steps(flipped_gan()) < -0.05


def test_short_training_beats_random_noise(digits) -> None:
    images, labels = digits
    judge = gan.DigitJudge(images, labels)
    model = new_gan()
    dataset = tf.data.Dataset.from_tensor_slices(images).shuffle(len(images), seed=0).batch(64)
    model.fit(dataset, epochs=10, shuffle=False, verbose=0)
    rng = np.random.default_rng(0)
    generated = judge.score(gan.generate(model.generator, rng.normal(size=(500, LATENT))))
    noise = judge.score(rng.uniform(-1, 1, size=(500, 8, 8, 1)))
    real = judge.score(judge.held_out)
    assert generated["confidence"] > noise["confidence"] + 0.05
    assert generated["distance"] < noise["distance"]
    assert generated["classes_covered"] > noise["classes_covered"]
    assert real["confidence"] > generated["confidence"]
    assert real["distance"] < generated["distance"]


# ------------------------------------------------------------------ the judge
@pytest.fixture(scope="module")
def judge(digits):
    return gan.DigitJudge(*digits)


def test_the_judge_never_saw_the_held_out_digits(judge, digits) -> None:
    split = judge.split
    assert not set(split["train"]) & set(split["held_out"])
    assert not set(split["reference"]) & set(split["held_out"])
    assert not set(split["train"]) & set(split["reference"])
    np.testing.assert_array_equal(judge.held_out, digits[0][split["held_out"]])


def test_the_judge_ranks_real_digits_above_noise(judge) -> None:
    real = judge.score(judge.held_out)
    noise = judge.score(np.random.default_rng(0).uniform(-1, 1, size=(450, 8, 8, 1)))
    assert real["class_balance"] > 0.95 and real["classes_covered"] == 10
    assert real["confidence"] > noise["confidence"] + 0.2
    assert real["distance"] < 2.0 < 10.0 < noise["distance"]


def test_the_judge_does_not_reward_mode_collapse(judge) -> None:
    """One clean digit repeated is *more* confident than real digits, so confidence alone would
    reward it; balance and distance must not."""
    real = judge.score(judge.held_out)
    probabilities = judge.classifier.predict_proba(judge.held_out.reshape(len(judge.held_out), -1))
    clearest = judge.held_out[probabilities.max(axis=1).argmax()]
    collapsed = judge.score(np.repeat(clearest[None], 450, axis=0))
    assert collapsed["confidence"] > real["confidence"]  # the trap
    assert collapsed["class_balance"] == 0.0 and collapsed["classes_covered"] == 1
    assert collapsed["distance"] > 10 * real["distance"]
    two_digits = judge.held_out[np.isin(judge.held_out_labels, [3, 7])]
    partial = judge.score(two_digits)
    assert partial["class_balance"] < 0.5 and partial["distance"] > 10 * real["distance"]


def test_frechet_distance_matches_the_matrix_square_root_formula() -> None:
    from scipy import linalg

    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 4))
    b = rng.normal(1.0, 2.0, size=(200, 4)) @ rng.normal(size=(4, 4))
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(
        cov_a + cov_b - 2 * np.real(linalg.sqrtm(cov_a @ cov_b))
    )
    assert gan.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert gan.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    assert gan.frechet_distance(a, a + 2.0) == pytest.approx(4 * 4.0, rel=1e-9)  # |shift|^2


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


def test_judge_rejects_wrong_shapes(judge) -> None:
    with pytest.raises(ValueError, match="shape"):
        judge.score(np.zeros((5, 64)))


def test_only_the_real_labels_are_smoothed(digits) -> None:
    images, _ = digits
    model = new_gan()
    seen = []
    bce = model.loss_fn

    def recording_loss(labels, logits):
        seen.append(np.asarray(labels))
        return bce(labels, logits)

    model.loss_fn = recording_loss
    model.discriminator_step(tf.constant(images[:8]))  # eager: the labels are values
    labels = seen[0][:, 0]
    np.testing.assert_array_equal(labels[:8], np.full(8, 0.9, np.float32))  # real side: 0.9
    np.testing.assert_array_equal(labels[8:], np.zeros(8, np.float32))  # fakes: exactly 0
    model.generator_step(8)
    np.testing.assert_array_equal(seen[1][:, 0], np.ones(8, np.float32))  # the generator aims at 1


def test_a_restored_checkpoint_continues_exactly(digits, tmp_path) -> None:
    images, _ = digits
    dataset = tf.data.Dataset.from_tensor_slices(images[:256]).batch(64)
    original = new_gan(seed=3)
    original.fit(dataset, epochs=2, shuffle=False, verbose=0)
    path = gan.make_checkpoint(original).save(str(tmp_path / "gan"))
    original.fit(dataset, epochs=1, shuffle=False, verbose=0)

    restored = new_gan(seed=4)  # other initial weights and seeds: all must come from the file
    status = gan.make_checkpoint(restored).read(path)
    status.assert_existing_objects_matched()
    assert int(restored.d_optimizer.iterations) == int(restored.g_optimizer.iterations) == 8
    restored.fit(dataset, epochs=1, shuffle=False, verbose=0)
    for a, b in ((original.generator, restored.generator), (original.discriminator, restored.discriminator)):
        for x, y in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(original.seed_generator.state.numpy(),
                                  restored.seed_generator.state.numpy())


def test_make_checkpoint_needs_a_compiled_gan() -> None:
    with pytest.raises(TypeError, match=r"model must be a gan\.GAN"):
        gan.make_checkpoint(gan.build_generator(LATENT))
    model = gan.GAN(gan.build_discriminator(), gan.build_generator(LATENT), LATENT)
    with pytest.raises(ValueError, match="compile the GAN before"):
        gan.make_checkpoint(model)
