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
