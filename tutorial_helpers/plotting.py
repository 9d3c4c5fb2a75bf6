"""Plots the chapters share: data with fitted lines, parameter trajectories, loss curves."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes


def _axes(ax: Axes | None, figsize: tuple[float, float] = (6.0, 4.0)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_line_fit(
    x: np.ndarray,
    y: np.ndarray,
    truth: Callable[[np.ndarray], np.ndarray],
    predictions: Mapping[str, np.ndarray] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Scatter the data, draw the ground-truth line and any named predictions."""
    ax = _axes(ax)
    ax.plot(x, y, ".", alpha=0.5, label="data")
    ax.plot(x, truth(x), "k--", label="ground truth")
    for name, y_pred in (predictions or {}).items():
        ax.plot(x, np.asarray(y_pred), label=name)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend()
    return ax


def plot_parameter_history(
    values: Mapping[str, Sequence[float]],
    targets: Mapping[str, float],
    ax: Axes | None = None,
) -> Axes:
    """Plot each parameter per epoch against its true value (a dashed line)."""
    ax = _axes(ax)
    for i, (name, series) in enumerate(values.items()):
        color = f"C{i}"
        ax.plot(range(len(series)), series, "o-", color=color, label=name)
        if name in targets:
            ax.axhline(targets[name], color=color, linestyle="--", label=f"true {name}")
    ax.set_xlabel("epoch (0 = before training)")
    ax.set_ylabel("value")
    ax.legend()
    return ax


def plot_history(
    history: Mapping[str, Sequence[float]],
    keys: Sequence[str] | None = None,
    logy: bool = False,
    ax: Axes | None = None,
    title: str | None = None,
) -> Axes:
    """Plot per-epoch curves from a history dict (``{"loss": [...], "val_loss": [...]}``)."""
    ax = _axes(ax)
    for key in keys or list(history):
        series = history[key]
        ax.plot(range(1, len(series) + 1), series, marker=".", label=key)
    ax.set_xlabel("epoch")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend()
    return ax


def plot_image_grid(
    images: np.ndarray,
    ncols: int = 10,
    ax: Axes | None = None,
    title: str | None = None,
    value_range: tuple[float, float] = (-1.0, 1.0),
) -> Axes:
    """Tile images of shape ``(n, h, w[, 1])`` into one grid, dark strokes on white."""
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[..., 0]
    if images.ndim != 3:
        raise ValueError(f"images must have shape (n, h, w) or (n, h, w, 1), got {images.shape}")
    n, h, w = images.shape
    nrows = -(-n // ncols)
    canvas = np.full((nrows * (h + 1) - 1, ncols * (w + 1) - 1), value_range[0], dtype=np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, ncols)
        canvas[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = image
    ax = _axes(ax, figsize=(ncols * 0.6, nrows * 0.6))
    ax.imshow(canvas, cmap="gray_r", vmin=value_range[0], vmax=value_range[1])
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax
