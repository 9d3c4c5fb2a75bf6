"""Small model builders shared by the chapters, so every chapter's network is built the same way."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from tutorial_helpers.validation import check_positive_int


def make_mlp(
    input_dim: int,
    hidden: Sequence[int] = (64, 64),
    outputs: int = 1,
    *,
    dropout: float = 0.0,
    batch_norm: bool = False,
    kernel_regularizer: keras.regularizers.Regularizer | None = None,
    kernel_initializer: str | keras.initializers.Initializer = "glorot_uniform",
    activation: str = "relu",
    output_activation: str | None = None,
    seed: int | None = None,
    name: str = "mlp",
) -> keras.Sequential:
    """A multilayer perceptron: ``Dense -> [BatchNorm] -> activation -> [Dropout]`` per hidden layer.

    Batch normalization goes between the linear layer and the activation (so the
    Dense layers before it need no bias); dropout after the activation.
    ``kernel_initializer`` and ``activation`` (default Glorot and ReLU) apply to
    every hidden layer; Chapter 12 uses them to make gradients explode or vanish.
    ``kernel_regularizer`` (e.g. ``keras.regularizers.L2(1e-3)``) applies to every
    Dense kernel, and its penalties appear in ``model.losses``.  With ``seed``,
    the initial weights depend only on it.
    """
    input_dim = check_positive_int(input_dim, "input_dim")
    outputs = check_positive_int(outputs, "outputs")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if seed is not None:
        keras.utils.set_random_seed(seed)
    layers: list[keras.layers.Layer] = [keras.Input((input_dim,))]
    for units in hidden:
        units = check_positive_int(units, "hidden units")
        layers.append(
            keras.layers.Dense(
                units,
                use_bias=not batch_norm,
                kernel_regularizer=kernel_regularizer,
                kernel_initializer=kernel_initializer,
            )
        )
        if batch_norm:
            layers.append(keras.layers.BatchNormalization())
        layers.append(keras.layers.Activation(activation))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(
        keras.layers.Dense(outputs, activation=output_activation, kernel_regularizer=kernel_regularizer)
    )
    return keras.Sequential(layers, name=name)
