"""Chapter 8: a training monitor that records the vital signs of a run and plots them."""

from __future__ import annotations

import math

import keras
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def smooth(values: list[float], weight: float = 0.6) -> list[float]:
    """Exponential moving average, as TensorBoard's smoothing slider computes it (debiased)."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"weight must be in [0, 1), got {weight}")
    smoothed, last, count = [], 0.0, 0
    for value in values:
        count += 1
        last = weight * last + (1 - weight) * value
        smoothed.append(last / (1 - weight**count))
    return smoothed


class TrainingMonitor(keras.callbacks.Callback):
    """Record loss, accuracy, learning rate and gradient norm every epoch; plot them in six panels.

    A Keras callback, so it works with ``fit()`` and with
    :class:`tutorial_helpers.trainer.Trainer` alike.  It reads the epoch logs
    (``loss``, ``val_loss``, ``accuracy``, ``val_accuracy``, ``grad_norm``) and
    the optimizer's current learning rate; a value a loop does not log (``fit()``
    does not log the gradient norm) is recorded as NaN and its panel says so.
    """

    KEYS = ("loss", "val_loss", "accuracy", "val_accuracy", "grad_norm")

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {key: [] for key in (*self.KEYS, "learning_rate")}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        for key in self.KEYS:
            self.history[key].append(float(logs.get(key, math.nan)))
        rate = logs.get("learning_rate", self.model.optimizer.learning_rate)
        self.history["learning_rate"].append(float(np.asarray(rate)))

    def plot(self, title: str | None = None) -> Figure:
        """Six panels: losses, accuracy, learning rate, gradient norm, overfitting gap, smoothed loss."""
        h = {key: np.asarray(values) for key, values in self.history.items()}
        epochs = np.arange(1, len(h["loss"]) + 1)
        fig, axes = plt.subplots(2, 3, figsize=(14, 7))
        panels = [
            ("Loss", [("loss", "train"), ("val_loss", "validation")], False),
            ("Accuracy", [("accuracy", "train"), ("val_accuracy", "validation")], False),
            ("Learning rate", [("learning_rate", "learning rate")], True),
            ("Global gradient norm", [("grad_norm", "mean over the epoch")], True),
        ]
        for ax, (name, series, logy) in zip(axes.flat, panels, strict=False):
            ax.set_title(name)
            for key, label in series:
                if np.all(np.isnan(h[key])):
                    ax.text(0.5, 0.5, f"{key} not logged", ha="center", transform=ax.transAxes)
                else:
                    ax.plot(epochs, h[key], marker=".", label=label)
            if logy and not np.all(np.isnan(h[series[0][0]])):
                ax.set_yscale("log")
            if len(series) > 1 and ax.get_lines():
                ax.legend()
        gap_ax, smooth_ax = axes.flat[4], axes.flat[5]
        gap_ax.set_title("Overfitting gap (val_loss - loss)")
        gap_ax.plot(epochs, h["val_loss"] - h["loss"], marker=".", color="C3")
        gap_ax.axhline(0, color="gray", linewidth=0.8)
        smooth_ax.set_title("Training loss, smoothed")
        smooth_ax.plot(epochs, h["loss"], alpha=0.3, label="raw")
        smooth_ax.plot(epochs, smooth(list(h["loss"])), label="smoothed (0.6)")
        smooth_ax.legend()
        for ax in axes[1]:
            ax.set_xlabel("epoch")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        return fig
