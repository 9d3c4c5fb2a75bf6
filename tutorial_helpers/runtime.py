"""Prepare a process (a notebook kernel, a test session) for reproducible, quiet runs.

TensorFlow writes C++ log lines straight to file descriptor 2 when it is
imported (oneDNN and CUDA-stub notices).  ``TF_CPP_MIN_LOG_LEVEL`` does not
silence all of them, and under Jupyter they would land in a saved notebook.
The only reliable cure is to point fd 2 at the null device while TensorFlow is
imported and first asked about devices, then point it back.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Iterator
from types import ModuleType

DEFAULT_SEED = 42


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Redirect the process-level stderr (fd 2) to the null device."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_import_tensorflow() -> ModuleType:
    """Import TensorFlow without its start-up logs and return the module.

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` and ``TF_ENABLE_ONEDNN_OPTS=0`` (unless the
    caller set them), imports TensorFlow and lists the physical devices with fd 2
    silenced, and lowers TensorFlow's Python logger to ``ERROR`` (in Jupyter it
    writes retracing warnings, with memory addresses, to stdout).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # oneDNN's fused kernels change results in the last bits from run to run
    # of different builds; turning them off keeps printed numbers stable.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    with _stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()
    tf.get_logger().setLevel("ERROR")
    return tf


def device_description() -> str:
    """Return ``"GPU (n)"`` when TensorFlow sees GPUs, otherwise ``"CPU"``."""
    tf = quiet_import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    return f"GPU ({len(gpus)})" if gpus else "CPU"


def set_seed(seed: int = DEFAULT_SEED) -> None:
    """Seed Python, NumPy, TensorFlow and Keras, and make TensorFlow ops deterministic."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    tf = quiet_import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)  # seeds `random`, NumPy and TensorFlow
    tf.config.experimental.enable_op_determinism()


def _use_inline_plots() -> None:
    """In a Jupyter kernel, draw figures inline even if ``MPLBACKEND`` says otherwise."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with every kernel
        return
    shell = get_ipython()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        shell.run_line_magic("matplotlib", "inline")


def split_cpu(devices: int) -> None:
    """Split the physical CPU into ``devices`` logical devices (for distribution on one machine).

    Must run before TensorFlow executes its first operation; afterwards the
    device list is fixed and this raises ``RuntimeError`` saying so.
    """
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ValueError(f"devices must be an int >= 1, got {devices!r}")
    tf = quiet_import_tensorflow()
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(devices)]
        )
    except RuntimeError as error:
        raise RuntimeError(
            "the CPU can only be split before TensorFlow runs its first operation: "
            "call prepare_notebook(cpu_devices=...) first, in a fresh kernel"
        ) from error


def prepare_notebook(seed: int = DEFAULT_SEED, cpu_devices: int = 1) -> None:
    """Make a chapter reproducible and quiet, and say what it runs on.

    Call it in the first code cell of every chapter, before anything imports
    TensorFlow.  It seeds every random generator, turns on op determinism,
    silences TensorFlow's start-up logs, and prints two lines: the library
    versions (pinned, so they are the same for every reader) and the device and
    Python version (which may differ, and explain different last digits).
    ``cpu_devices=2`` splits the CPU into two logical devices first, so that a
    distribution strategy has two replicas on any laptop (Chapter 10).
    """
    if cpu_devices != 1:
        split_cpu(cpu_devices)
    set_seed(seed)
    _use_inline_plots()
    tf = quiet_import_tensorflow()
    import keras

    print(
        f"TensorFlow {tf.__version__} | Keras {keras.__version__} | "
        f"seed {seed} | op determinism on"
    )
    print(
        f"Device: {device_description()} | Python {platform.python_version()} "
        f"on {platform.system()} {platform.machine()}"
    )
    if cpu_devices != 1:
        logical = tf.config.list_logical_devices("CPU")
        print(f"CPU split into {len(logical)} logical devices")
