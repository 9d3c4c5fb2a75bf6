"""prepare_notebook(): quiet, seeded, deterministic, and it says what it runs on."""

from __future__ import annotations

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
