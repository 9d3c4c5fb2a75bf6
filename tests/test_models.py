"""models.make_mlp: the layers asked for, penalties in model.losses, reproducible from a seed."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tutorial_helpers.models import make_mlp


def layer_types(model: keras.Model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_plain_mlp() -> None:
    model = make_mlp(4, (8, 6), outputs=2)
    assert layer_types(model) == ["Dense", "Activation", "Dense", "Activation", "Dense"]
    assert model.output_shape == (None, 2)
    assert model.losses == []


def test_dropout_and_batch_norm_in_order() -> None:
    model = make_mlp(4, (8,), dropout=0.3, batch_norm=True)
    assert layer_types(model) == ["Dense", "BatchNormalization", "Activation", "Dropout", "Dense"]
    assert model.layers[0].use_bias is False  # batch norm's beta replaces the bias


def test_penalties_reach_every_kernel() -> None:
    model = make_mlp(4, (8, 8), kernel_regularizer=keras.regularizers.L2(0.1))
    kernels = [layer.kernel.numpy() for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    np.testing.assert_allclose([float(p) for p in model.losses], [0.1 * np.sum(k**2) for k in kernels],
                               rtol=1e-5)


def test_seed_fixes_the_initial_weights() -> None:
    a, b, c = make_mlp(3, seed=1), make_mlp(3, seed=1), make_mlp(3, seed=2)
    for u, v in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [({"input_dim": 0}, ValueError, "input_dim"), ({"input_dim": 2.5}, TypeError, "input_dim"),
     ({"input_dim": 3, "dropout": 1.0}, ValueError, "dropout"),
     ({"input_dim": 3, "hidden": (8, 0)}, ValueError, "hidden units"),
     ({"input_dim": 3, "outputs": -1}, ValueError, "outputs")],
)
def test_bad_arguments(kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        make_mlp(**kwargs)
