"""Chapter 17: padded sequences with masks, and models that take a dict of inputs, in a hand-written loop."""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Integral
from typing import Any

import keras
import numpy as np
import tensorflow as tf

_MASK_HELP = "one entry per value, True where the position is real"


def padding_mask(tokens: Any, pad_id: int = 0) -> tf.Tensor:
    """A boolean tensor shaped like ``tokens``: True at real tokens, False at padding (``pad_id``)."""
    if isinstance(pad_id, bool) or not isinstance(pad_id, Integral):
        raise TypeError(f"pad_id must be an int (the padding token's id), got {type(pad_id).__name__}")
    tokens = tf.convert_to_tensor(tokens)
    if not tokens.dtype.is_integer:
        raise TypeError(f"tokens must be integer token ids, got dtype {tokens.dtype.name}")
    return tf.not_equal(tokens, tf.cast(pad_id, tokens.dtype))  # True at real tokens


def masked_mean(values: Any, mask: Any) -> tf.Tensor:
    """The mean of ``values`` over the positions where ``mask`` is True (a float mask weighs them).

    ``mask`` must have the shape of ``values``: a mismatch is a ValueError when
    the shapes are known when the function is traced, else an assertion that
    fails when the step runs.  Where no position is real the mean is 0, not
    NaN (``divide_no_nan``, as Keras's masked losses do).
    """
    values = tf.convert_to_tensor(values)
    mask = tf.convert_to_tensor(mask)
    if not values.dtype.is_floating:
        raise TypeError(f"values must be floating (per-position losses or scores), got {values.dtype.name}")
    message = f"mask has shape {tuple(mask.shape)} but values have shape {tuple(values.shape)}: {_MASK_HELP}"
    if not mask.shape.is_compatible_with(values.shape):
        raise ValueError(message)
    checks = []
    if not (mask.shape.is_fully_defined() and values.shape.is_fully_defined()):  # only inside tf.function
        checks.append(tf.debugging.assert_equal(tf.shape(mask), tf.shape(values), message=(
            f"mask has shape x but values have shape y (both below): {_MASK_HELP}")))
    with tf.control_dependencies(checks):
        mask = tf.cast(mask, values.dtype)
        return tf.math.divide_no_nan(tf.reduce_sum(values * mask), tf.reduce_sum(mask))


def check_inputs(inputs: Any, model: keras.Model) -> None:
    """Raise a clear error unless ``inputs`` is a dict that ``model`` (built on a dict of Inputs) takes as is.

    ``inputs`` needs exactly the keys of ``model.input``, each with the rank
    of its ``keras.Input``.  Keras 3.15 itself, calling ``model(inputs)``:

    - on a missing key raises ``ValueError: Missing data for input "amount".
      You passed a data dictionary with keys ['tokens']. Expected the
      following keys: ['amount', 'tokens']``;
    - on an extra key only warns ("The structure of `inputs` doesn't match
      the expected structure", shown once per session); then it pairs the
      dict's values, in sorted key order, with the Inputs one by one: a key
      sorting after every Input's is ignored, but one sorting before (say
      "amont" next to "amount", "tokens") shifts them by one: "amount" gets
      the stray tensor, "tokens" gets amount's (cast to int32), and the
      tokens are dropped (keras-team/keras#23258, not fixed in 3.15.1);
    - on a rank one too high with a last axis of 1 squeezes that axis, and on
      a rank one too low for an Input whose last axis is 1 adds it, silently.

    So a typo or a stray axis can train a model on something else than meant;
    this check, called once on the first batch, turns each into an error.
    """
    try:
        expected = model.input if isinstance(model, keras.Model) else None
    except (AttributeError, ValueError):  # a model not built on keras.Input
        expected = None
    if not isinstance(expected, Mapping):
        raise TypeError(f"model must be a Keras model built on a dict of keras.Input, got {model!r:.80}")
    if not isinstance(inputs, Mapping):
        raise TypeError(f"inputs must be a dict mapping input names to tensors, got {type(inputs).__name__}")
    takes = ", ".join(repr(name) for name in sorted(expected))
    missing = sorted(set(expected) - set(inputs))
    if missing:
        raise ValueError(f"inputs is missing {', '.join(map(repr, missing))}; the model takes {takes}")
    extra = sorted(set(inputs) - set(expected), key=str)
    if extra:
        raise ValueError(
            f"inputs has {', '.join(map(repr, extra))}, which the model does not take "
            f"(Keras would only warn, and may feed it to another Input); the model takes {takes}"
        )
    for name in sorted(expected):
        want = len(expected[name].shape)
        value = inputs[name]
        shape = tf.TensorShape(value.shape if hasattr(value, "shape") else np.shape(value))
        if shape.rank is not None and shape.rank != want:
            raise ValueError(
                f"inputs[{name!r}] has rank {shape.rank} (shape {tuple(shape)}), but the model's "
                f"Input {name!r} has rank {want} (shape {tuple(expected[name].shape)})"
            )


def _length_agnostic(spec: Any) -> tf.TensorSpec:
    """``spec`` with the batch axis, and the length axis of a sequence, set to None."""
    if not isinstance(spec, tf.TensorSpec):
        raise TypeError(f"padded_signature handles dense tensors only, got {type(spec).__name__}")
    dims = spec.shape.as_list() if spec.shape.rank is not None else None
    if dims:  # rank >= 1: the batch axis
        dims[0] = None
        # [batch, length] token ids or labels, [batch, length, features] embeddings;
        # a float [batch, features] (say [batch, 1]) is not a sequence and keeps its width.
        if len(dims) >= 3 or (len(dims) == 2 and spec.dtype.is_integer):
            dims[1] = None
    return tf.TensorSpec(dims, spec.dtype, spec.name)


def padded_signature(dataset: tf.data.Dataset) -> tuple:
    """An ``input_signature`` for a step called on each batch of ``dataset``, whatever its padded length.

    ``dataset.element_spec`` with axis 0 (the batch) set to None, and axis 1
    too for a sequence: integer tensors of rank 2 (token ids, per-token
    labels) and any tensor of rank 3 or more.  Dict elements keep their keys.
    ``tf.function(input_signature=...)`` wants one spec per positional
    argument: an ``(x, y)`` element gives ``(spec_x, spec_y)`` for
    ``step(x, y)``; any other element (a dict, one tensor) gives a 1-tuple
    for ``step(batch)``.  A step given this signature traces once; without it
    ``tf.function`` traces again for every new padded length.
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(f"dataset must be a tf.data.Dataset, got {type(dataset).__name__}")
    spec = dataset.element_spec
    arguments = tuple(spec) if isinstance(spec, tuple) else (spec,)
    return tuple(tf.nest.map_structure(_length_agnostic, argument) for argument in arguments)
