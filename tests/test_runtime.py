"""prepare_notebook(): quiet, seeded, deterministic, and it says what it runs on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers import runtime


def test_prepare_notebook_prints_versions_and_device(capsys: pytest.CaptureFixture[str]) -> None:
    runtime.prepare_notebook(seed=7)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"TensorFlow {tf.__version__} | Keras {__import__('keras').__version__} "
        "| seed 7 | op determinism on"
    )
    assert lines[1].startswith("Device: CPU |") or lines[1].startswith("Device: GPU (")
    assert len(lines) == 2


def test_set_seed_makes_every_generator_repeat() -> None:
    import random

    def draw() -> tuple[float, float, float]:
        return random.random(), float(np.random.rand()), float(tf.random.uniform(()))  # noqa: NPY002

    runtime.set_seed(123)
    first = draw()
    runtime.set_seed(123)
    assert draw() == first


@pytest.mark.parametrize(("seed", "error"), [(-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_set_seed_rejects_bad_seeds(seed: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="seed"):
        runtime.set_seed(seed)  # type: ignore[arg-type]


def test_tensorflow_import_is_silent_in_a_fresh_process() -> None:
    code = (
        "from tutorial_helpers import prepare_notebook; prepare_notebook(); "
        "import tensorflow as tf; print(float(tf.reduce_sum(tf.ones(3))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", f"TensorFlow wrote to stderr: {result.stderr[:500]!r}"
    assert result.stdout.splitlines()[-1] == "3.0"


# --- on a GPU machine (faked: the project's machines have no GPU) ---------------------------------


def test_describe_devices_names_the_gpus_and_tf32() -> None:
    assert runtime.describe_devices([], tf32=True) == "CPU"
    assert runtime.describe_devices(["NVIDIA H100 80GB HBM3"], tf32=True) == (
        "GPU (1 x NVIDIA H100 80GB HBM3, TF32 matmuls on)"
    )
    assert runtime.describe_devices(["A", "A", "B"], tf32=False) == "GPU (2 x A, 1 x B, TF32 matmuls off)"
    assert runtime.describe_devices(["Tesla T4"], tf32=True, tf32_capable=False) == (
        "GPU (1 x Tesla T4, no TF32 on this GPU)"
    )


def test_device_description_for_a_faked_gpu_list(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    details = {"device_name": "NVIDIA A100-SXM4-40GB", "compute_capability": (8, 0)}
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [fake, fake])
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: details)
    assert runtime.device_description() == "GPU (2 x NVIDIA A100-SXM4-40GB, TF32 matmuls on)"
    monkeypatch.setattr(tf.config.experimental, "tensor_float_32_execution_enabled", lambda: False)
    assert runtime.device_description() == "GPU (2 x NVIDIA A100-SXM4-40GB, TF32 matmuls off)"
    details["compute_capability"] = (7, 0)  # a V100: TF32 needs Ampere (8.0) or newer
    assert runtime.device_description().endswith("no TF32 on this GPU)")


def test_memory_growth_is_set_before_the_devices_are_created(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tf.config.PhysicalDevice(name="/physical_device:GPU:0", device_type="GPU")
    calls: list[str] = []
    monkeypatch.setattr(
        tf.config, "list_physical_devices", lambda kind=None: [fake] if kind == "GPU" else []
    )
    monkeypatch.setattr(
        tf.config.experimental,
        "set_memory_growth",
        lambda device, on: calls.append(f"growth {device.name} {on}"),
    )
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: calls.append("create devices"))
    runtime.initialize_devices()
    assert calls == ["growth /physical_device:GPU:0 True", "create devices"]


def test_prepare_notebook_creates_the_devices_quietly_with_memory_growth() -> None:
    # After prepare_notebook() the devices exist (the CPU can no longer be split),
    # and every child process inherits GPU memory growth.
    code = (
        "import os; from tutorial_helpers import prepare_notebook; prepare_notebook(); "
        "from tutorial_helpers.runtime import split_cpu\n"
        "try:\n    split_cpu(2)\nexcept RuntimeError:\n    print('devices exist')\n"
        "print(os.environ['TF_FORCE_GPU_ALLOW_GROWTH'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_FORCE_GPU_ALLOW_GROWTH"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines()[-2:] == ["devices exist", "true"]


def test_a_cuda_build_that_finds_no_gpu_warns_only_where_a_driver_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = runtime.missing_gpu_warning(cuda_build=True, gpus=0, driver_present=True, environ={})
    assert message is not None and "tensorflow[and-cuda]" in message
    # a laptop without an NVIDIA driver, a CPU-only build, a working GPU, GPUs hidden on purpose
    assert runtime.missing_gpu_warning(cuda_build=True, gpus=0, driver_present=False, environ={}) is None
    assert runtime.missing_gpu_warning(cuda_build=False, gpus=0, driver_present=True, environ={}) is None
    assert runtime.missing_gpu_warning(cuda_build=True, gpus=1, driver_present=True, environ={}) is None
    for hidden in ("", "-1"):
        assert runtime.missing_gpu_warning(True, 0, True, {"CUDA_VISIBLE_DEVICES": hidden}) is None
    monkeypatch.setattr(runtime, "_nvidia_driver_present", lambda: True)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.warns(RuntimeWarning, match="found no GPU"):
        runtime.initialize_devices()


def test_child_processes_meant_for_the_cpu_see_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from tutorial_helpers import multiworker

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    env = runtime.cpu_only_environment()
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["PATH"] == os.environ["PATH"]
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"  # the caller's own environment is untouched
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    worker = multiworker.worker_environment(cluster, 1)
    assert worker["CUDA_VISIBLE_DEVICES"] == ""
    assert json.loads(worker["TF_CONFIG"]) == {"cluster": cluster, "task": {"type": "worker", "index": 1}}


def test_prepare_notebook_sets_tf32_as_asked(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        runtime.prepare_notebook(tf32=False)
        assert not tf.config.experimental.tensor_float_32_execution_enabled()
        runtime.prepare_notebook()
        assert tf.config.experimental.tensor_float_32_execution_enabled()  # TensorFlow's default
    finally:
        tf.config.experimental.enable_tensor_float_32_execution(True)
    with pytest.raises(TypeError, match="tf32"):
        runtime.prepare_notebook(tf32="no")  # type: ignore[arg-type]
