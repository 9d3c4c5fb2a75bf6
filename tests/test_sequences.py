"""Chapter 17's helpers: padding masks, masked means, dict inputs and length-agnostic signatures."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers.sequences import check_inputs, masked_mean, padded_signature, padding_mask


def ragged_mask(lengths, width: int) -> np.ndarray:
    return np.arange(width) < np.asarray(lengths)[:, None]


def test_masked_mean_averages_only_the_real_positions() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(6, 11)).astype(np.float32)
    mask = ragged_mask([11, 4, 0, 7, 1, 9], 11)  # a fully padded row
    expected = values.astype(np.float64)[mask].mean()
    np.testing.assert_allclose(float(masked_mean(values, mask)), expected, rtol=1e-6)
    np.testing.assert_allclose(float(masked_mean(values, mask.astype(np.float32))), expected, rtol=1e-6)
    assert not np.isclose(float(masked_mean(values, mask)), values.mean(), rtol=1e-3)


def test_masked_mean_of_nothing_real_is_zero_not_nan() -> None:
    assert float(masked_mean(tf.ones((3, 4)), tf.zeros((3, 4), tf.bool))) == 0.0


@pytest.fixture(scope="module")
def tagger() -> keras.Model:
    inputs = keras.Input((None,), dtype="int32")
    hidden = keras.layers.Embedding(21, 8, mask_zero=True)(inputs)
    return keras.Model(inputs, keras.layers.Dense(2)(hidden))


def test_masked_mean_of_token_losses_is_what_keras_computes_from_the_mask(tagger) -> None:
    rng = np.random.default_rng(1)
    tokens = np.where(ragged_mask([9, 3, 0, 6], 9), rng.integers(1, 21, (4, 9)), 0).astype(np.int32)
    y = rng.integers(0, 2, (4, 9)).astype(np.int32)
    logits = tagger(tokens)
    np.testing.assert_array_equal(logits._keras_mask.numpy(), padding_mask(tokens).numpy())
    per_token = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    ours = float(masked_mean(per_token, padding_mask(tokens)))
    keras_loss = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits))
    np.testing.assert_allclose(ours, keras_loss, rtol=1e-6)
    assert not np.isclose(ours, float(tf.reduce_mean(per_token)), rtol=1e-3)  # padding would count


def test_padding_mask_marks_the_real_tokens_of_padded_batches() -> None:
    sequences = [[3, 1, 4], [1, 5, 9, 2, 6], [5], [3, 5, 8, 9], [7, 9]]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(sequences), output_signature=tf.TensorSpec([None], tf.int32))
    lengths = [len(s) for s in sequences]
    for i, batch in enumerate(dataset.padded_batch(2)):
        chunk = lengths[2 * i : 2 * i + 2]
        np.testing.assert_array_equal(padding_mask(batch).numpy(), ragged_mask(chunk, max(chunk)))
    batch = next(iter(dataset.padded_batch(5, padding_values=-1)))
    np.testing.assert_array_equal(padding_mask(batch, pad_id=-1).numpy(), ragged_mask(lengths, 5))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: padding_mask(tf.constant([[1.0, 0.0]])), TypeError, "tokens must be integer"),
        (lambda: padding_mask(tf.constant([[1, 0]]), pad_id=0.0), TypeError, "pad_id must be an int"),
        (lambda: padding_mask(tf.constant([[1, 0]]), pad_id=False), TypeError, "pad_id must be an int"),
        (lambda: masked_mean(tf.ones((4, 10)), tf.ones((4, 9), tf.bool)), ValueError,
         r"mask has shape \(4, 9\) but values have shape \(4, 10\): one entry per value"),
        (lambda: masked_mean(tf.ones((4, 10), tf.int32), tf.ones((4, 10), tf.bool)), TypeError,
         "values must be floating"),
    ],
    ids=["float tokens", "float pad_id", "bool pad_id", "mask shape", "int values"],
)
def test_bad_arguments_raise_errors_that_name_them(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()


def test_masked_mean_checks_shapes_known_only_at_run_time() -> None:
    @tf.function(input_signature=[tf.TensorSpec([None, None]), tf.TensorSpec([None, None], tf.bool)])
    def mean(values, mask):
        return masked_mean(values, mask)

    assert float(mean(tf.ones((2, 3)), tf.ones((2, 3), tf.bool))) == 1.0
    with pytest.raises(tf.errors.InvalidArgumentError, match="mask has shape x but values have shape y"):
        mean(tf.ones((2, 3)), tf.ones((2, 4), tf.bool))


@pytest.fixture(scope="module")
def two_inputs() -> keras.Model:
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    amount = keras.Input((1,), name="amount")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(21, 4, mask_zero=True)(tokens))
    return keras.Model({"tokens": tokens, "amount": amount},
                       keras.layers.Dense(1)(keras.layers.Concatenate()([pooled, amount])))


GOOD = {"tokens": tf.constant([[3, 4, 0], [5, 0, 0]]), "amount": tf.constant([[1.0], [2.0]])}


def test_check_inputs_passes_what_the_model_takes(two_inputs) -> None:
    assert check_inputs(GOOD, two_inputs) is None
    assert check_inputs({k: v.numpy() for k, v in GOOD.items()}, two_inputs) is None
    assert two_inputs(GOOD).shape == (2, 1)


@pytest.mark.parametrize(
    ("inputs", "error", "match"),
    [
        ({"tokens": GOOD["tokens"]}, ValueError,
         "inputs is missing 'amount'; the model takes 'amount', 'tokens'"),
        ({**GOOD, "amont": GOOD["amount"]}, ValueError, "inputs has 'amont', which the model does not take"),
        ({**GOOD, "amount": tf.constant([1.0, 2.0])}, ValueError, r"inputs\['amount'\] has rank 1"),
        ({**GOOD, "tokens": GOOD["tokens"][..., None]}, ValueError, r"inputs\['tokens'\] has rank 3"),
        ([GOOD["tokens"], GOOD["amount"]], TypeError, "inputs must be a dict"),
    ],
    ids=["missing", "extra", "rank too low", "rank too high", "a list"],
)
def test_check_inputs_names_what_is_wrong(two_inputs, inputs, error, match) -> None:
    with pytest.raises(error, match=match):
        check_inputs(inputs, two_inputs)


def test_check_inputs_needs_a_model_built_on_a_dict(tagger) -> None:
    with pytest.raises(TypeError, match="model must be a Keras model built on a dict"):
        check_inputs(GOOD, tagger)


def test_what_keras_itself_does_with_those_inputs(two_inputs) -> None:
    """The reasons for check_inputs: a missing key raises, the other mistakes pass with a warning or silently.

    (An extra key that sorts before a declared one, like "amont", is worse in Keras 3.15: the
    tensors shift by one, keras-team/keras#23258; not asserted here, as a later Keras fixes it.)
    """
    expected = two_inputs(GOOD).numpy()
    with pytest.raises(ValueError, match='Missing data for input "amount"'):
        two_inputs({"tokens": GOOD["tokens"]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        extra = two_inputs({**GOOD, "weights": GOOD["amount"] + 100.0})
    assert any("doesn't match the expected structure" in str(w.message) for w in caught)
    np.testing.assert_array_equal(extra.numpy(), expected)  # the extra tensor is ignored
    squeezed = two_inputs({**GOOD, "amount": tf.constant([1.0, 2.0])})  # (2,) taken as (2, 1)
    np.testing.assert_array_equal(squeezed.numpy(), expected)


def dict_batches(drop_remainder: bool) -> tf.data.Dataset:
    """Batches of two padded to lengths 5, 9 and 13, each element ({"tokens", "amount"}, labels)."""
    lengths = [5, 2, 9, 4, 13, 1]

    def generate():
        for n in lengths:
            features = {"tokens": np.arange(1, n + 1, dtype=np.int32), "amount": np.float32([n])}
            yield features, np.ones(n, np.int32)

    signature = ({"tokens": tf.TensorSpec([None], tf.int32), "amount": tf.TensorSpec([1], tf.float32)},
                 tf.TensorSpec([None], tf.int32))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return dataset.padded_batch(2, drop_remainder=drop_remainder)


def test_padded_signature_frees_the_batch_and_length_axes_only() -> None:
    dataset = dict_batches(drop_remainder=True)
    assert dataset.element_spec[1].shape.as_list() == [2, None]  # the batch axis is fixed here
    assert padded_signature(dataset) == (
        {"tokens": tf.TensorSpec([None, None], tf.int32), "amount": tf.TensorSpec([None, 1], tf.float32)},
        tf.TensorSpec([None, None], tf.int32),
    )
    frames = tf.data.Dataset.from_tensors(tf.zeros((4, 7, 3)))  # one tensor: a 1-tuple for step(batch)
    assert padded_signature(frames) == (tf.TensorSpec([None, None, 3], tf.float32),)
    with pytest.raises(TypeError, match=r"dataset must be a tf\.data\.Dataset"):
        padded_signature([GOOD])


def test_a_step_with_the_padded_signature_traces_once_for_three_lengths() -> None:
    def body(x, y):
        return masked_mean(tf.cast(y, tf.float32) * x["amount"], padding_mask(x["tokens"]))

    dataset = dict_batches(drop_remainder=False)
    with_signature = tf.function(body, input_signature=padded_signature(dataset))
    plain = tf.function(body)
    lengths = []
    for x, y in dataset:
        lengths.append(int(x["tokens"].shape[1]))
        assert float(with_signature(x, y)) == float(plain(x, y))
    assert lengths == [5, 9, 13]
    assert with_signature.experimental_get_tracing_count() == 1
    assert plain.experimental_get_tracing_count() == 3
