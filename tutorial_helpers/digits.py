"""Chapter 16: a digit classifier end to end: the splits, a small CNN, a confusion matrix, class names."""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from tutorial_helpers.data import load_digit_images
from tutorial_helpers.validation import check_number

#: What each class index means, for printing predictions.
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class DigitSplits:
    """Images ``(n, 8, 8, 1)`` in ``[0, 1]`` and integer labels, in three disjoint parts."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def load_digit_splits(val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0) -> DigitSplits:
    """scikit-learn's 1,797 digits, split into training, validation and test sets.

    Each split is *stratified*: every digit is as frequent in it as in the whole
    data set, so a small test set still holds every class.  The test set is cut
    first and never used for a decision (model, epochs, threshold): it measures
    the finished model once.
    """
    from sklearn.model_selection import train_test_split

    val_fraction = check_number(val_fraction, "val_fraction", minimum=0.0, maximum=1.0,
                                exclusive_minimum=True, exclusive_maximum=True)
    test_fraction = check_number(test_fraction, "test_fraction", minimum=0.0, maximum=1.0,
                                 exclusive_minimum=True, exclusive_maximum=True)
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction + test_fraction must leave data to train on, got {val_fraction} + {test_fraction}"
        )
    images, labels = load_digit_images(0.0, 1.0)
    labels = labels.astype(np.int32)
    x_rest, x_test, y_rest, y_test = train_test_split(
        images, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_fraction / (1.0 - test_fraction), stratify=y_rest, random_state=seed
    )
    return DigitSplits(x_train, y_train, x_val, y_val, x_test, y_test)


def build_digit_cnn(seed: int = 0, dropout: float = 0.2) -> keras.Sequential:
    """A small convolutional network for 8x8 digits that outputs 10 logits.

    Two 3x3 convolutions (the second with stride 2, 8x8 -> 4x4) find strokes and
    their combinations wherever they are in the image; dropout and a dense
    layer turn them into one score per digit.
    """
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dropout(dropout, seed=seed),
            keras.layers.Dense(10),
        ],
        name="digit_cnn",
    )


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """Counts: row = true class, column = predicted class."""
    y_true, y_pred = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {len(y_true)} and {len(y_pred)}")
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        if values.size and (not np.issubdtype(values.dtype, np.integer) or values.min() < 0
                            or values.max() >= num_classes):
            raise ValueError(f"{name} must hold class indices 0..{num_classes - 1}, got {values[:5]}...")
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def predict_names(model: keras.Model, images: np.ndarray,
                  names: tuple[str, ...] = DIGIT_NAMES) -> list[tuple[str, float]]:
    """Inference: ``(class name, probability)`` for each image, from the model's logits."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1:] != tuple(model.input_shape[1:]):
        raise ValueError(
            f"images must have shape (n, {', '.join(map(str, model.input_shape[1:]))}), got {images.shape}"
        )
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(images, verbose=0)))
    if probabilities.shape[1] != len(names):
        raise ValueError(f"the model has {probabilities.shape[1]} classes but {len(names)} names were given")
    best = probabilities.argmax(axis=1)
    return [(names[i], float(p[i])) for i, p in zip(best, probabilities, strict=True)]
