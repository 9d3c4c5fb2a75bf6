"""Chapter 8: the trainer's checkpoint folder, and what keeps two runs from mixing in it.

A ``checkpoint_dir`` holds, beside ``tf.train.CheckpointManager``'s numbered
checkpoints, a ``run.json`` file with the run's *fingerprint*: everything
that decides which weights a run produces besides the epochs (the model's
weight shapes, the optimizer's class and settings, the loss, the batch size,
the data order, the gradient clipping).  A run resumes from the folder only
when asked to (``resume=True``) and only when its fingerprint equals the saved
one; otherwise :class:`CheckpointError` names what differs, before any
training.  A folder that cannot be read (a corrupt index, missing files) or
written is a :class:`CheckpointError` too, also before training.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tutorial_helpers.data_order import shuffle_seeds
from tutorial_helpers.early_stopping import EarlyStopper, StopperState

RUN_FILE = "run.json"


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be used: corrupt, unwritable, or another run's."""


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples become lists, NumPy scalars numbers)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else repr(v)))


def describe(obj: Any) -> dict[str, Any]:
    """An optimizer, a loss or a schedule as ``{"class": ..., <its config, name left out>}``."""
    if hasattr(obj, "get_config"):
        kind, config = type(obj), {k: v for k, v in obj.get_config().items() if k != "name"}
    else:  # a hand-written loss: a function is named by itself, a callable object by its class
        kind, config = (obj if hasattr(obj, "__qualname__") else type(obj)), {}
    return _plain({"class": f"{kind.__module__}.{kind.__qualname__}", **config})


def run_fingerprint(
    model: keras.Model, optimizer: keras.optimizers.Optimizer | dict[str, Any], loss_fn: Any, *,
    batch_size: int | None, shuffle_seed: int | None, train_data: Any,
    clipnorm: float | None, global_clipnorm: float | None,
) -> dict[str, Any]:
    """What decides a run's weights besides the number of epochs, as plain JSON values.

    The model is described by its weights' shapes (its layer names change
    with every model built in a session, so they are left out); a
    ``tf.data`` pipeline by the seeds of its shuffles.  ``optimizer`` may be
    given as its :func:`describe` taken earlier: a callback such as
    ``ReduceLROnPlateau`` changes the learning rate during a run, and the
    run's fingerprint is what the user asked for, not what the callback made of it.
    """
    return _plain({
        "model": [type(model).__name__, *(list(w.shape) for w in model.weights)],
        "optimizer": optimizer if isinstance(optimizer, dict) else describe(optimizer),
        "loss": describe(loss_fn),
        "batch_size": batch_size,
        "shuffle_seed": shuffle_seed,
        "data": "tf.data.Dataset" if isinstance(train_data, tf.data.Dataset) else "arrays",
        "data_shuffle_seeds": shuffle_seeds(train_data) if isinstance(train_data, tf.data.Dataset) else [],
        "clipnorm": clipnorm,
        "global_clipnorm": global_clipnorm,
    })


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: value}


def fingerprint_differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """One line per setting that differs between two fingerprints: ``"name: saved A, now B"``."""
    old, new = _flatten(saved), _flatten(now)
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "(not set)"), new.get(key, "(not set)")
        if isinstance(a, float) and isinstance(b, float) and np.isclose(a, b, rtol=1e-6, atol=0):
            continue
        if a != b:
            lines.append(f"{key}: saved {a!r}, now {b!r}")
    return lines


def check_writable(directory: str | Path, name: str) -> Path:
    """Create ``directory`` if needed and check that a file can be written there; return it as a Path.

    Raises :class:`CheckpointError` naming ``name`` when it cannot, so an
    unwritable folder is found before the first epoch, not after it.
    """
    path = Path(directory)
    probe = path / ".write-test"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise CheckpointError(f"{name} {path} cannot be written: {error}") from error
    return path


def latest_checkpoint(directory: Path) -> str | None:
    """The newest checkpoint in ``directory`` (``None`` when there is none).

    A ``checkpoint`` index that cannot be parsed, or checkpoint files without
    an index, raise :class:`CheckpointError` instead of TensorFlow's
    ``UnicodeDecodeError`` / ``ParseError``, or a silent fresh start.
    """
    if not directory.exists():
        return None
    try:
        latest = tf.train.latest_checkpoint(str(directory))
    except Exception as error:  # a damaged text file fails in several ways
        raise CheckpointError(
            f"the 'checkpoint' index file in {directory} cannot be read ({type(error).__name__}): "
            "it is corrupt; delete the folder to start over"
        ) from error
    if latest is None and list(directory.glob("ckpt-*")):
        raise CheckpointError(
            f"{directory} holds checkpoint files but no readable 'checkpoint' index: "
            "it is corrupt or incomplete; delete it or choose another directory"
        )
    return latest


class RunFolder:
    """The ``run.json`` beside the checkpoints: the run's fingerprint and its TensorBoard subfolder."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = check_writable(directory, "checkpoint_dir")
        self.path = self.directory / RUN_FILE
        self.info: dict[str, Any] = {}

    def read(self) -> dict[str, Any]:
        """The saved ``run.json`` (``{}`` when there is none); :class:`CheckpointError` when unreadable."""
        if not self.path.exists():
            return {}
        try:
            info = json.loads(self.path.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise CheckpointError(f"{self.path} cannot be read: it is corrupt ({error})") from error
        if not isinstance(info, dict) or "fingerprint" not in info:
            raise CheckpointError(f"{self.path} holds no run fingerprint: it is not this trainer's")
        return info

    def write(self) -> None:
        self.path.write_text(json.dumps(self.info, indent=1, sort_keys=True) + "\n")

    def check_resume(self, latest: str, fingerprint: dict[str, Any], resume: bool) -> None:
        """Refuse to continue the run saved at ``latest`` unless asked to and it is this run."""
        saved = self.read()
        if not resume:
            raise CheckpointError(
                f"{self.directory} already holds the checkpoints of a run (latest: {Path(latest).name}). "
                "Pass resume=True to continue that run, or choose an empty checkpoint_dir for a new one"
            )
        if not saved:
            raise CheckpointError(
                f"{self.directory} holds checkpoints but no {RUN_FILE}: they were not written by this "
                "trainer, so nothing says which run they belong to"
            )
        differences = fingerprint_differences(saved["fingerprint"], fingerprint)
        if differences:
            hint = "Use the settings it was saved with, or choose an empty checkpoint_dir"
            if any(line.startswith("data_shuffle_seeds") for line in differences):
                hint += (
                    ". A tf.data shuffle's order depends on the seed given to shuffle and on the "
                    "global seed when the dataset was built: give shuffle a seed, and build the "
                    "dataset after the same set_random_seed call"
                )
            raise CheckpointError(
                f"{self.directory} holds another run: resuming would mix two runs. What differs:\n  "
                + "\n  ".join(differences) + "\n" + hint
            )
        self.info = saved

    def start(self, fingerprint: dict[str, Any]) -> None:
        """Record a fresh run's fingerprint (this also proves the folder writable)."""
        self.info = {"fingerprint": fingerprint}
        self.write()


def next_run_dir(tensorboard_dir: str | Path) -> Path:
    """A new ``run-N`` subfolder of ``tensorboard_dir`` (N one more than any there), not yet created."""
    root = check_writable(tensorboard_dir, "tensorboard_dir")
    numbers = [int(p.name[4:]) for p in root.glob("run-*") if p.name[4:].isdigit()]
    return root / f"run-{max(numbers, default=0) + 1}"


class VariableSnapshot:
    """An in-memory copy of some variables (a model's and its optimizer's), kept on their device.

    :meth:`take` copies the variables into shadow variables and
    :meth:`restore` copies them back, each as one compiled call, with no
    transfer to the host: cheap enough to take at the start of every epoch,
    so that a run whose loss turns NaN can go back to its last finite state.
    """

    def __init__(self, variables: list[tf.Variable]) -> None:
        self.variables = list(variables)
        self.copies = [tf.Variable(v, trainable=False) for v in self.variables]
        pairs = list(zip(self.copies, self.variables, strict=True))
        self._take = tf.function(lambda: [copy.assign(v) for copy, v in pairs])
        self._restore = tf.function(lambda: [v.assign(copy) for copy, v in pairs])

    def take(self) -> None:
        self._take()

    def restore(self) -> None:
        self._restore()


class RunCheckpoints:
    """One run's checkpoints in ``checkpoint_dir``: what is saved, and the checks on opening.

    The checkpoint holds the model (with ``model.variables`` listed, which
    include the dropout layers' random-generator state that ``model=`` alone
    does not save), the optimizer, the epochs done, the history so far and,
    with early stopping, the stopper's state.
    """

    def __init__(
        self, directory: str | Path, model: keras.Model, optimizer: keras.optimizers.Optimizer,
        early_stopping: EarlyStopper | None, max_to_keep: int,
    ) -> None:
        self.folder = RunFolder(directory)  # refuses an unwritable folder now, not after epoch 1
        self.early_stopping, self.max_to_keep = early_stopping, max_to_keep
        parts: dict[str, Any] = dict(
            model=model,
            optimizer=optimizer,
            model_variables=list(model.variables),
            epoch=tf.Variable(0, dtype=tf.int64),
            history=tf.Variable("{}", dtype=tf.string),
        )
        self.stopper_state = None
        if early_stopping is not None:
            self.stopper_state = StopperState(model.get_weights())
            parts["early_stopper"] = self.stopper_state
        self.checkpoint = tf.train.Checkpoint(**parts)
        self.manager: tf.train.CheckpointManager | None = None

    def restore(self, latest: str) -> tuple[int, dict[str, list[float]]]:
        """Restore the checkpoint ``latest``; return the epochs it holds and their history."""
        try:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError, IndexError, KeyError) as error:
            raise CheckpointError(f"cannot restore {latest}: {error}") from error
        epochs_done = int(self.checkpoint.epoch)
        history = json.loads(self.checkpoint.history.numpy().decode())
        if self.stopper_state is not None:
            self.stopper_state.load_into(self.early_stopping)
        return epochs_done, {key: values[:epochs_done] for key, values in history.items()}

    def open(self, fingerprint: dict[str, Any], resume: bool) -> tuple[int, dict[str, list[float]]]:
        """Start a fresh run or resume this one; return the epochs already done (0: fresh) and their history.

        Raises :class:`CheckpointError` before any training for a corrupt
        folder, or one holding another run's checkpoints, or this run's
        without ``resume=True``.
        """
        latest = latest_checkpoint(self.folder.directory)
        if latest is None:
            self.folder.start(fingerprint)
            done: tuple[int, dict[str, list[float]]] = (0, {})
        else:
            self.folder.check_resume(latest, fingerprint, resume)
            done = self.restore(latest)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(self.folder.directory), max_to_keep=self.max_to_keep
        )
        return done

    def save(self, epoch: int, history: dict[str, list[float]], early_stopping: EarlyStopper | None) -> None:
        """Save the state after epoch ``epoch`` (0-based) as checkpoint number ``epoch + 1``."""
        self.checkpoint.epoch.assign(epoch + 1)
        self.checkpoint.history.assign(json.dumps(history))
        if self.stopper_state is not None:
            self.stopper_state.save_from(early_stopping)
        self.manager.save(checkpoint_number=epoch + 1)
