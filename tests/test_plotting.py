"""The plotting helpers draw what they are given, and reject what they cannot draw."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from tutorial_helpers import plotting


def test_image_grid_tiles_the_images() -> None:
    images = np.stack([np.full((8, 8, 1), v, dtype=np.float32) for v in (-1.0, 0.0, 1.0)])
    ax = plotting.plot_image_grid(images, ncols=2)
    canvas = ax.images[0].get_array()
    assert canvas.shape == (17, 17)  # 2 x 2 tiles of 8 with one separator line
    assert canvas[0, 0] == -1.0 and canvas[0, 9] == 0.0 and canvas[9, 0] == 1.0
    plt.close("all")


def test_image_grid_rejects_flat_vectors() -> None:
    with pytest.raises(ValueError, match="shape"):
        plotting.plot_image_grid(np.zeros((4, 64)))


def test_history_plot_draws_one_line_per_key() -> None:
    ax = plotting.plot_history({"loss": [3.0, 2.0, 1.0], "val_loss": [3.5, 2.5, 2.0]}, logy=True)
    assert [line.get_label() for line in ax.get_lines()] == ["loss", "val_loss"]
    assert list(ax.get_lines()[0].get_xdata()) == [1, 2, 3]
    plt.close("all")


def test_parameter_history_draws_targets() -> None:
    ax = plotting.plot_parameter_history({"W": [5.0, 4.0]}, {"W": 3.0})
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["W", "true W"]
    plt.close("all")
