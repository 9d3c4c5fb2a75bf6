"""Chapter 8: TensorBoard logs written with ``tf.summary``, and read back for plotting.

View them with ``tensorboard --logdir <dir>`` (then open http://localhost:6006).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import keras
import tensorflow as tf


def write_epoch_summaries(
    writer: tf.summary.SummaryWriter,
    epoch: int,
    logs: Mapping[str, float],
    model: keras.Model | None = None,
) -> None:
    """Write every value in ``logs`` as a scalar, and ``model``'s weights as histograms, at ``epoch``."""
    with writer.as_default(step=epoch):
        for name, value in logs.items():
            tf.summary.scalar(name, value)
        if model is not None:
            for variable in model.trainable_variables:
                tf.summary.histogram(variable.path, variable)
    writer.flush()


def read_scalars(logdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Read every scalar in the event files under ``logdir``: ``{tag: [(step, value), ...]}``.

    Event files in subfolders of ``logdir`` (one per run, or Keras's
    ``train/`` and ``validation/``) are kept apart, as TensorBoard keeps its
    runs apart: their tags are prefixed with the subfolder, e.g.
    ``"run-2/loss"`` or ``"validation/epoch_loss"``.  Files directly in
    ``logdir`` keep their tags.  Raises ``FileNotFoundError`` if ``logdir``
    holds no event file.
    """
    root = Path(logdir)
    files = sorted(root.rglob("events.out.tfevents.*"))
    if not files:
        raise FileNotFoundError(f"no TensorBoard event files under {logdir}")
    scalars: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for path in files:
        folder = path.parent.relative_to(root).as_posix()
        prefix = "" if folder == "." else f"{folder}/"
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    scalars[prefix + value.tag].append((event.step, float(tf.make_ndarray(value.tensor))))
    return {tag: sorted(points) for tag, points in scalars.items()}
