"""Prepare a process (a notebook kernel, a test session) for reproducible, quiet runs.

TensorFlow writes C++ log lines straight to file descriptor 2 when it is
imported (oneDNN and CUDA-stub notices) and when it creates its devices, at the
first operation ("Created device ... GPU:0").  ``TF_CPP_MIN_LOG_LEVEL`` does not
silence all of them, and under Jupyter they would land in a saved notebook.
The only reliable cure is to point fd 2 at the null device while TensorFlow is
imported and while it creates its devices, then point it back.

On a GPU machine two more things matter.  Without memory growth every
TensorFlow process takes nearly all the memory of every visible GPU, so two
notebook kernels (``pytest -n 2``) or two worker processes cannot share one;
:func:`quiet_import_tensorflow` turns growth on through
``TF_FORCE_GPU_ALLOW_GROWTH``, which every child process inherits.  And the
silenced logs would hide a CUDA build of TensorFlow that finds no GPU, so
:func:`initialize_devices` says so in a warning.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
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
    # Read when TensorFlow creates a GPU device, in this process and in every
    # child (notebook kernels, workers): take GPU memory as needed, not all of it.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    # oneDNN's fused kernels change results in the last bits from run to run
    # of different builds; turning them off keeps printed numbers stable.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    with _stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()
    tf.get_logger().setLevel("ERROR")
    return tf


def describe_devices(gpu_names: Sequence[str], tf32: bool, tf32_capable: bool = True) -> str:
    """The device part of the chapter header, from the GPUs' names (none: ``"CPU"``).

    ``"GPU (1 x NVIDIA H100 80GB HBM3, TF32 matmuls on)"``: with TF32 on, an
    Ampere or newer GPU rounds the inputs of float32 matmuls and convolutions to
    10 mantissa bits, which moves printed digits (see the README, "On a GPU").
    """
    if not gpu_names:
        return "CPU"
    counts = {name: gpu_names.count(name) for name in dict.fromkeys(gpu_names)}
    kinds = ", ".join(f"{count} x {name}" for name, count in counts.items())
    if not tf32_capable:
        precision = "no TF32 on this GPU"
    else:
        precision = f"TF32 matmuls {'on' if tf32 else 'off'}"
    return f"GPU ({kinds}, {precision})"


def device_description() -> str:
    """Return ``"CPU"``, or the GPUs TensorFlow sees and whether TF32 is on."""
    tf = quiet_import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    names, capable = [], False
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        names.append(details.get("device_name", gpu.name))
        capable |= tuple(details.get("compute_capability", (8, 0))) >= (8, 0)
    tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
    return describe_devices(names, tf32, tf32_capable=capable)


def cpu_only_environment() -> dict[str, str]:
    """A copy of this process's environment that hides every GPU.

    For child processes that must run on the CPU, such as Chapter 11's worker
    processes: on a GPU machine they would otherwise all open the same GPUs.
    """
    env = dict(os.environ)
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def _nvidia_driver_present() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidiactl").exists()


def missing_gpu_warning(
    cuda_build: bool, gpus: int, driver_present: bool, environ: Mapping[str, str]
) -> str | None:
    """The warning to give when a CUDA build of TensorFlow cannot use a GPU that is there."""
    hidden = environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1")
    if not cuda_build or gpus or not driver_present or hidden:
        return None
    return (
        "An NVIDIA driver is installed but TensorFlow found no GPU, so this runs on "
        "the CPU. The CUDA libraries are probably missing: install the book with "
        "`pip install tensorflow[and-cuda]==2.21.0`, then restart the kernel. "
        "(TensorFlow's own message is silenced; set TF_CPP_MIN_LOG_LEVEL=0 to see it.)"
    )


def initialize_devices() -> None:
    """Create TensorFlow's devices now, quietly, with GPU memory growth on.

    TensorFlow creates its devices at the first operation and logs each one to
    fd 2; done here, inside the silenced region, those lines never reach a
    notebook.  Memory growth must be set before the devices exist, so it is set
    here first.  Warns (``RuntimeWarning``) when a CUDA build of TensorFlow
    finds no GPU on a machine that has an NVIDIA driver.
    """
    tf = quiet_import_tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    with _stderr_silenced():
        for gpu in gpus:
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:  # devices already exist; TF_FORCE_GPU_ALLOW_GROWTH applied
                pass
        tf.config.list_logical_devices()
    message = missing_gpu_warning(
        tf.test.is_built_with_cuda(), len(gpus), _nvidia_driver_present(), os.environ
    )
    if message:
        warnings.warn(message, RuntimeWarning, stacklevel=2)


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


def prepare_notebook(seed: int = DEFAULT_SEED, cpu_devices: int = 1, tf32: bool = True) -> None:
    """Make a chapter reproducible and quiet, and say what it runs on.

    Call it in the first code cell of every chapter, before anything imports
    TensorFlow.  It seeds every random generator, turns on op determinism,
    creates TensorFlow's devices with their start-up logs silenced (and GPU
    memory growth on), and prints two lines: the library versions (pinned, so
    they are the same for every reader) and the device and Python version
    (which may differ, and explain different last digits; on a GPU the line
    names it and says whether TF32 matmuls are on).
    ``cpu_devices=2`` splits the CPU into two logical devices first, so that a
    distribution strategy has two replicas on any laptop (Chapter 11).

    ``tf32`` keeps TensorFlow's default on a GPU: float32 matmuls and
    convolutions in TF32 (inputs rounded to 10 mantissa bits) on Ampere and
    newer GPUs, which is what a reader's own code gets there.  Every claim in
    the book holds with it (``tests/run_variants.py --variants tf32``);
    ``tf32=False`` gives full float32 precision, printed numbers closer to the
    book's, and slower matmuls.  It changes nothing on a CPU.
    """
    if not isinstance(tf32, bool):
        raise TypeError(f"tf32 must be True or False, got {tf32!r}")
    if cpu_devices != 1:
        split_cpu(cpu_devices)
    initialize_devices()
    set_seed(seed)
    _use_inline_plots()
    tf = quiet_import_tensorflow()
    tf.config.experimental.enable_tensor_float_32_execution(tf32)
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
