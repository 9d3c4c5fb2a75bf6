"""Chapter 17's exercise checkers accept a right answer and reject a typical wrong one with its hint."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers import check
from tutorial_helpers.sequences import masked_mean


def hits(y, logits):
    return tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=y.dtype), y), tf.float32)


def masked_accuracy(y, logits, mask):
    mask = tf.cast(mask, tf.float32)
    return tf.math.divide_no_nan(tf.reduce_sum(hits(y, logits) * mask), tf.reduce_sum(mask))


def numpy_masked_accuracy(y, logits, mask):  # a Python float is fine too
    right = np.argmax(np.asarray(logits), axis=-1) == np.asarray(y)
    return float(right[np.asarray(mask)].mean())


def mean_of_row_accuracies(y, logits, mask):  # 0/0 on the fully padded row
    mask = tf.cast(mask, tf.float32)
    return tf.reduce_mean(tf.reduce_sum(hits(y, logits) * mask, axis=1) / tf.reduce_sum(mask, axis=1))


@pytest.mark.parametrize("right", [masked_accuracy, numpy_masked_accuracy,
                                   lambda y, z, m: masked_mean(hits(y, z), m)])
def test_masked_accuracy_passes_a_right_answer(right, capsys) -> None:
    assert check.masked_accuracy(right) is True
    assert capsys.readouterr().out.strip() == "masked_accuracy: correct"


@pytest.mark.parametrize(
    ("wrong", "hint"),
    [
        (lambda y, z, m: tf.reduce_mean(hits(y, z)), "the accuracy over all positions (padding counted)"),
        (mean_of_row_accuracies, "got NaN: the fully padded row"),
        (lambda y, z, m: tf.reduce_sum(hits(y, z) * tf.cast(m, tf.float32)), "expected 0."),
    ],
    ids=["padding counted", "rows averaged", "a sum"],
)
def test_masked_accuracy_explains_a_wrong_answer(wrong, hint, capsys) -> None:
    assert check.masked_accuracy(wrong) is False
    out = capsys.readouterr().out
    assert out.startswith("masked_accuracy: not yet") and hint in out


@pytest.fixture(scope="module")
def tagged():
    """24 sequences of lengths 1 to 20 in random order, tokens 1..20, a 0/1 label per token."""
    rng = np.random.default_rng(3)
    sequences = [rng.integers(1, 21, n).astype(np.int32) for n in rng.integers(1, 21, 24)]
    labels = [rng.integers(0, 2, len(s)).astype(np.int32) for s in sequences]
    return sequences, labels


def pairs(sequences, labels):
    return tf.data.Dataset.from_generator(
        lambda: zip(sequences, labels, strict=True),
        output_signature=(tf.TensorSpec([None], tf.int32), tf.TensorSpec([None], tf.int32)))


def buckets(sequences, labels, batch_size):
    return pairs(sequences, labels).bucket_by_sequence_length(
        lambda x, y: tf.shape(x)[0], bucket_boundaries=[6, 11, 16], bucket_batch_sizes=[batch_size] * 4)


def test_bucketed_passes_bucket_by_sequence_length(tagged, capsys) -> None:
    assert check.bucketed(buckets(*tagged, 4), *tagged, 4) is True
    assert capsys.readouterr().out.strip() == "bucketed: correct"


def test_bucketed_explains_a_wrong_answer(tagged, capsys) -> None:
    sequences, labels = tagged
    plain = sum(4 * max(map(len, sequences[i : i + 4])) - sum(map(len, sequences[i : i + 4]))
                for i in range(0, 24, 4))
    assert check.bucketed(pairs(*tagged).padded_batch(4), *tagged, 4) is False
    assert f"your batches hold {plain} padded positions, a plain padded_batch(4) holds {plain}" in (
        capsys.readouterr().out)
    assert check.bucketed(buckets(*tagged, 8), *tagged, 4) is False
    assert "more than batch_size=4" in capsys.readouterr().out
    dropped = pairs(*tagged).bucket_by_sequence_length(
        lambda x, y: tf.shape(x)[0], [6, 11, 16], [4] * 4, drop_remainder=True)
    assert check.bucketed(dropped, *tagged, 4) is False
    assert "pairs are missing" in capsys.readouterr().out
    swapped = buckets(sequences, [1 - t for t in labels], 4)
    assert check.bucketed(swapped, *tagged, 4) is False
    assert "pairs are missing and" in capsys.readouterr().out
    assert check.bucketed(list(buckets(*tagged, 4)), *tagged, 4) is False
    assert "not a tf.data.Dataset" in capsys.readouterr().out


def step_body(x, y):
    return masked_mean(tf.cast(y, tf.float32), tf.not_equal(x, 0))


def test_traces_once_passes_a_step_with_an_input_signature(capsys) -> None:
    spec = tf.TensorSpec([None, None], tf.int32)
    step = tf.function(step_body, input_signature=[spec, spec])
    assert check.traces_once(step) is True
    assert capsys.readouterr().out.strip() == "traces_once: correct"
    assert step.experimental_get_tracing_count() == 1
    assert check.traces_once(step) is True  # already traced: no new trace


@pytest.mark.parametrize(
    ("step", "hint"),
    [
        (tf.function(step_body),
         "traced 3 times: give tf.function an input_signature with None for the length"),
        (tf.function(step_body, reduce_retracing=True), "traced 2 times"),
        (step_body, "step is not a tf.function"),
    ],
    ids=["plain", "reduce_retracing", "not a tf.function"],
)
def test_traces_once_explains_a_wrong_answer(step, hint, capsys) -> None:
    assert check.traces_once(step) is False
    assert hint in capsys.readouterr().out
