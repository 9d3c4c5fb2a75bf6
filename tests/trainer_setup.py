"""The small model and the trainer that ``test_trainer.py`` and ``test_faults.py`` both train."""

from __future__ import annotations

import keras

from tutorial_helpers.trainer import Trainer


def build(seed: int = 1, dropout: float = 0.0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((3,)), keras.layers.Dense(16, activation="relu")]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(1))
    return keras.Sequential(layers)


def make_trainer(model: keras.Model, optimizer: keras.optimizers.Optimizer | None = None,
                 loss_fn: keras.losses.Loss | None = None, **kwargs) -> Trainer:
    """A trainer with Adam(0.01) and MSE unless told otherwise."""
    return Trainer(model, optimizer=optimizer or keras.optimizers.Adam(0.01),
                   loss_fn=loss_fn or keras.losses.MeanSquaredError(), **kwargs)
