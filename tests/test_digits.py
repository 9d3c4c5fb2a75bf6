"""Chapter 16: the digit splits, the CNN trained by the loop equal to fit, the confusion matrix, names."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import confusion_matrix as sklearn_confusion_matrix

from tutorial_helpers import data, digits, loops, multi_output
from tutorial_helpers.compare import max_weight_difference


@pytest.fixture(scope="module")
def splits() -> digits.DigitSplits:
    return digits.load_digit_splits()


def test_splits_are_disjoint_complete_and_stratified(splits) -> None:
    parts = [(splits.x_train, splits.y_train), (splits.x_val, splits.y_val), (splits.x_test, splits.y_test)]
    assert [len(x) for x, _ in parts] == [1077, 360, 360]
    images, labels = data.load_digit_images(0.0, 1.0)
    everything = np.concatenate([x for x, _ in parts]).reshape(1797, -1)
    assert len(np.unique(everything, axis=0)) == len(np.unique(images.reshape(1797, -1), axis=0))
    overall = np.bincount(labels, minlength=10) / len(labels)
    for x, y in parts:
        assert x.shape[1:] == (8, 8, 1) and x.min() >= 0.0 and x.max() <= 1.0
        assert np.abs(np.bincount(y, minlength=10) / len(y) - overall).max() < 0.01  # stratified
    again = digits.load_digit_splits()
    np.testing.assert_array_equal(again.y_test, splits.y_test)  # the same split every time
    assert not np.array_equal(digits.load_digit_splits(seed=1).y_test, splits.y_test)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"val_fraction": 0.0}, r"val_fraction must be a number in \(0, 1\)"),
    ({"test_fraction": 1.5}, r"test_fraction must be a number in \(0, 1\)"),
    ({"val_fraction": 0.5, "test_fraction": 0.5}, "must leave data to train on"),
])
def test_bad_split_fractions(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        digits.load_digit_splits(**kwargs)


def test_the_loop_trains_the_cnn_exactly_as_fit(splits) -> None:
    def settings():
        return dict(optimizer=keras.optimizers.Adam(1e-2),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])

    model, s = digits.build_digit_cnn(seed=0), settings()
    history = loops.train(model, (splits.x_train, splits.y_train), batch_size=32, optimizer=s["optimizer"],
                          loss_fn=s["loss"], metrics=s["metrics"],
                          validation_data=(splits.x_val, splits.y_val),
                          epochs=4, verbose=0)
    reference = digits.build_digit_cnn(seed=0)
    reference.compile(**settings(), jit_compile=False)
    fitted = reference.fit(splits.x_train, splits.y_train, batch_size=32, epochs=4, shuffle=False,
                           validation_data=(splits.x_val, splits.y_val), verbose=0).history
    assert max_weight_difference(model, reference) == 0.0
    assert history == fitted
    assert history["val_accuracy"][-1] > 0.9  # it learns: 10 classes, chance is 0.1


def test_confusion_matrix_equals_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 10, 500), rng.integers(0, 10, 500)
    counts = digits.confusion_matrix(y_true, y_pred)
    np.testing.assert_array_equal(counts, sklearn_confusion_matrix(y_true, y_pred, labels=range(10)))
    assert counts.sum() == 500
    small = digits.confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 0]), num_classes=2)
    np.testing.assert_array_equal(small, [[1, 0], [1, 1]])


@pytest.mark.parametrize(("y_true", "y_pred", "message"), [
    ([0, 1], [0], "same length"),
    ([0, 10], [0, 1], r"y_true must hold class indices 0..9"),
    ([0, 1], [0.5, 1.0], r"y_pred must hold class indices 0..9"),
])
def test_confusion_matrix_refuses_bad_labels(y_true, y_pred, message) -> None:
    with pytest.raises(ValueError, match=message):
        digits.confusion_matrix(np.asarray(y_true), np.asarray(y_pred))


def test_predict_names_is_the_argmax_of_the_softmax(splits) -> None:
    model = digits.build_digit_cnn(seed=0)
    names = digits.predict_names(model, splits.x_test[:16])
    logits = model.predict(splits.x_test[:16], verbose=0)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert [n for n, _ in names] == [digits.DIGIT_NAMES[i] for i in logits.argmax(axis=1)]
    np.testing.assert_allclose([p for _, p in names], probabilities.max(axis=1), rtol=1e-5)
    with pytest.raises(ValueError, match=r"images must have shape \(n, 8, 8, 1\)"):
        digits.predict_names(model, splits.x_test[0])
    with pytest.raises(ValueError, match="10 classes but 3 names"):
        digits.predict_names(model, splits.x_test[:2], names=("a", "b", "c"))


# ------------------------------------------------------------ several outputs, several losses
def two_task_model(seed: int = 0, penalty: float = 1e-2) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    h = multi_output.ActivityPenalty(penalty)(keras.layers.Flatten()(h))
    return keras.Model(inputs, {"digit": keras.layers.Dense(10, name="digit")(h),
                                "large": keras.layers.Dense(1, name="large")(h)})


LOSSES = {"digit": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
          "large": keras.losses.BinaryCrossentropy(from_logits=True)}


@pytest.mark.parametrize("loss_weights", [{"digit": 1.0, "large": 0.5}, {"digit": 0.2, "large": 3.0}])
def test_weighted_multi_output_loop_equals_fit(splits, loss_weights) -> None:
    x = splits.x_train[:300]  # 300 = 9 x 32 + 12: a short last batch too
    y = {"digit": splits.y_train[:300], "large": (splits.y_train[:300] >= 5).astype(np.float32)[:, None]}
    model, optimizer = two_task_model(), keras.optimizers.Adam(1e-2)
    trackers = {name: keras.metrics.Mean(name=name) for name in ("loss", "digit_loss", "large_loss")}
    step = multi_output.make_multi_output_train_step(model, optimizer, LOSSES, loss_weights, trackers)
    history = {name: [] for name in trackers}
    for _ in range(3):
        for tracker in trackers.values():
            tracker.reset_state()
        for xb, yb in tf.data.Dataset.from_tensor_slices((x, y)).batch(32):
            step(xb, yb)
        for name, tracker in trackers.items():
            history[name].append(float(tracker.result()))
    reference = two_task_model()
    reference.compile(optimizer=keras.optimizers.Adam(1e-2), loss=LOSSES, loss_weights=loss_weights,
                      jit_compile=False)
    fitted = reference.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0).history
    assert max_weight_difference(model, reference) == 0.0
    for name in history:
        assert history[name] == fitted[name], name


def test_the_weighted_loss_is_the_formula(splits) -> None:
    model = two_task_model(penalty=0.5)
    x = splits.x_train[:16]
    y = {"digit": splits.y_train[:16], "large": (splits.y_train[:16] >= 5).astype(np.float32)[:, None]}
    y_pred = model(x)
    total, parts = multi_output.weighted_loss(model, LOSSES, {"digit": 2.0, "large": 0.25}, y, y_pred)
    penalty = float(model.losses[0])
    hidden = keras.Model(model.input, model.layers[2].output)(x)  # the flattened activations
    assert penalty == pytest.approx(0.5 * float(np.mean(np.square(hidden))), rel=1e-5)
    expected = 2.0 * float(parts["digit"]) + 0.25 * float(parts["large"]) + penalty
    assert float(total) == pytest.approx(expected, rel=1e-6)
    digit_loss = float(LOSSES["digit"](y["digit"], y_pred["digit"]))
    assert float(parts["digit"]) == pytest.approx(digit_loss, rel=1e-6)


def test_multi_output_step_refuses_mismatched_losses() -> None:
    model, trackers = two_task_model(), {}
    with pytest.raises(ValueError, match=r"one entry per output \['digit', 'large'\]"):
        multi_output.make_multi_output_train_step(model, keras.optimizers.Adam(), {"digit": LOSSES["digit"]},
                                                  {}, trackers)
    with pytest.raises(ValueError, match=r"loss_weights names outputs the model does not have: \['size'\]"):
        multi_output.make_multi_output_train_step(model, keras.optimizers.Adam(), LOSSES, {"size": 1.0},
                                                  trackers)
