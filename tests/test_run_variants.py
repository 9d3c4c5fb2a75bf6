"""The variants check (tests/run_variants.py) catches a cell that another machine prints differently.

A tiny notebook is saved with the outputs of this machine: one cell prints a
sum over a float32 matrix product (the shape of a Dense layer's forward pass)
to nine significant digits, whose last bits depend on the instruction set the
matmul kernel uses; one prints something exact.
Run under ``ONEDNN_MAX_CPU_ISA=SSE41`` the check must fail, naming the first
cell and only that one.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_variants", ROOT / "tests" / "run_variants.py")
run_variants = importlib.util.module_from_spec(spec)
sys.modules["run_variants"] = run_variants
spec.loader.exec_module(run_variants)

SETUP = "from tutorial_helpers.runtime import quiet_import_tensorflow\ntf = quiet_import_tensorflow()"
FRAGILE = (
    "x = tf.random.stateless_normal((64, 40), seed=(1, 2))\n"
    "w = tf.random.stateless_normal((40, 128), seed=(3, 4))\n"
    "print(f'{float(tf.reduce_sum(tf.matmul(x, w) ** 2)):.9g}')"
)
STABLE = "print(sum(range(10)))"


def _saved_notebook(folder: Path) -> tuple[Path, str]:
    """A notebook saved executed, with what this process prints for each cell, and the fragile output."""
    tf = pytest.importorskip("tensorflow")
    with tf.device("/cpu:0"):  # full float32, also when this test itself runs under the tf32 imitation
        x = tf.random.stateless_normal((64, 40), seed=(1, 2))
        w = tf.random.stateless_normal((40, 128), seed=(3, 4))
        fragile_output = f"{float(tf.reduce_sum(tf.matmul(x, w) ** 2)):.9g}\n"
    cells = []
    for n, (source, text) in enumerate([(SETUP, None), (FRAGILE, fragile_output), (STABLE, "45\n")], 1):
        cell = nbformat.v4.new_code_cell(source, execution_count=n)
        if text is not None:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        cells.append(cell)
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "unstable.ipynb"
    nbformat.write(nb, path)
    return path, fragile_output.strip()


def test_variants_check_names_the_cell_another_machine_prints_differently(tmp_path, capsys) -> None:
    notebook, saved = _saved_notebook(tmp_path)

    assert run_variants.main(["--variants", "native", "-n", "1", str(notebook)]) == 0
    assert "reproduced under every variant" in capsys.readouterr().out

    assert run_variants.main(["--variants", "sse41", "-n", "1", str(notebook)]) == 1
    report = capsys.readouterr().out
    assert "unstable :: Cell 1  under sse41" in report, report
    assert f"+ {saved}" in report, report  # what the notebook saved, beside what this run printed
    assert "Cell 2" not in report, report


def test_unknown_variant_is_refused(capsys) -> None:
    with pytest.raises(SystemExit):
        run_variants.main(["--variants", "avx3"])
    assert "unknown variant" in capsys.readouterr().err


def test_variant_environment_replaces_the_callers_numeric_settings(monkeypatch) -> None:
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX")
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")
    env = run_variants.variant_environment(run_variants.VARIANTS["threads1"])
    assert env["TF_NUM_INTRAOP_THREADS"] == "1" and "ONEDNN_MAX_CPU_ISA" not in env
    xla = run_variants.variant_environment(run_variants.VARIANTS["xla"])
    assert str(run_variants.XLA_SITE) in xla["PYTHONPATH"].split(":")
    assert not xla.get("TF_NUM_INTRAOP_THREADS") and not xla.get("ONEDNN_MAX_CPU_ISA")
    # run from inside a variant, the others do not inherit its folder
    monkeypatch.setenv("PYTHONPATH", f"{run_variants.TF32_SITE}:/elsewhere")
    assert run_variants.variant_environment(run_variants.VARIANTS["native"])["PYTHONPATH"] == "/elsewhere"
    assert run_variants.variant_environment(run_variants.VARIANTS["xla"])["PYTHONPATH"].split(":") == [
        str(run_variants.XLA_SITE), "/elsewhere"]


def test_tf32_variant_reports_changed_outputs_and_fails_on_errors(tmp_path, capsys) -> None:
    notebook, saved = _saved_notebook(tmp_path)
    exact = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(SETUP, execution_count=1),
        nbformat.v4.new_code_cell(
            "assert float(tf.matmul([[1 + 2.0**-12]], [[1.0]])[0, 0]) > 1.0, 'rounded'", execution_count=2
        ),
    ])
    exact.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(exact, tmp_path / "exact.ipynb")

    notebooks = [str(notebook), str(tmp_path / "exact.ipynb")]
    assert run_variants.main(["--variants", "tf32", "-n", "1", *notebooks]) == 1
    report = capsys.readouterr().out
    changed, _, failed = report.partition("did not reproduce")
    assert "unstable :: Cell 1:" in changed and f"+ {saved}" in changed, report  # reported ...
    assert "unstable" not in failed, report  # ... not failed
    assert "exact :: Cell 1  under tf32" in failed and "rounded" in failed, report  # an assertion still fails


TF32_SCRIPT = """
import json
import numpy as np
from tutorial_helpers.runtime import set_seed
set_seed(0)
import keras, tensorflow as tf
x = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)
dense = keras.layers.Dense(4, kernel_initializer=keras.initializers.GlorotUniform(seed=1))
conv = keras.layers.Conv2D(2, 3, kernel_initializer=keras.initializers.GlorotUniform(seed=2))
def run():
    with tf.GradientTape() as tape:
        out = dense(x)
        loss = tf.reduce_sum(out ** 3)
    grad = tape.gradient(loss, dense.kernel)
    image = tf.reshape(tf.constant(x[:, :8]), (2, 8, 8, 1))
    return out.numpy().tolist(), grad.numpy().tolist(), conv(image).numpy().tolist()
out, grad, image = run()
with tf.device("/cpu:0"):
    cpu = run()
tf.config.experimental.enable_tensor_float_32_execution(False)
off = run()
print(json.dumps({"kernel": dense.kernel.numpy().tolist(), "out": out, "grad": grad, "conv": image,
                  "cpu": cpu, "off": off}))
"""


def _tf32(a: np.ndarray) -> np.ndarray:
    """Round float32 values to TF32 (10 mantissa bits), to nearest even, in NumPy."""
    bits = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0xFFF + ((bits >> 13) & 1)) & 0xFFFFE000
    return bits.astype(np.uint32).view(np.float32)


def test_the_tf32_imitation_rounds_matmuls_forward_and_backward_except_on_the_cpu() -> None:
    def run(variant: str) -> dict:
        env = run_variants.variant_environment(run_variants.VARIANTS[variant])
        result = subprocess.run([sys.executable, "-c", TF32_SCRIPT], env=env, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return {k: np.array(v, dtype=np.float32) if k not in ("cpu", "off") else v
                for k, v in json.loads(result.stdout.splitlines()[-1]).items()}

    native, tf32 = run("native"), run("tf32")
    x = np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)
    kernel = native["kernel"]
    np.testing.assert_array_equal(tf32["kernel"], kernel)  # the same starting point
    for key in ("out", "grad", "conv"):
        assert np.max(np.abs(tf32[key] - native[key])) > 1e-5, key  # the variant changes results ...
    # ... as a GPU would: the forward pass from rounded inputs, the kernel's gradient x^T g from rounded g
    np.testing.assert_allclose(tf32["out"], _tf32(x) @ _tf32(kernel), rtol=1e-6, atol=1e-6)
    upstream = 3 * tf32["out"] ** 2
    np.testing.assert_allclose(tf32["grad"], _tf32(x).T @ _tf32(upstream), rtol=1e-5, atol=1e-5)
    # on a CPU device, or with TF32 turned off, nothing is rounded
    for key in ("cpu", "off"):
        for got, want in zip(tf32[key], (native["out"], native["grad"], native["conv"]), strict=True):
            np.testing.assert_array_equal(np.array(got, dtype=np.float32), want)


def test_a_variant_that_would_change_nothing_is_refused() -> None:
    native_env = run_variants.variant_environment(run_variants.VARIANTS["native"])
    with pytest.raises(SystemExit, match="tf32 variant is not in effect"):
        run_variants.check_variant_is_active(run_variants.VARIANTS["tf32"], native_env)


def test_a_variant_this_cpu_cannot_execute_is_skipped_not_left_to_hang(monkeypatch, capsys) -> None:
    # What an AVX2-only CPU does under OPENBLAS_CORETYPE=SkylakeX: the process dies with SIGILL.
    monkeypatch.setattr(run_variants, "ISA_SMOKE", "import os, signal; os.kill(os.getpid(), signal.SIGILL)")
    avx2 = run_variants.VARIANTS["avx2"]
    reason = run_variants.cannot_run_here(avx2, run_variants.variant_environment(avx2))
    assert reason and "SIGILL" in reason and "Haswell" in reason
    assert run_variants.main(["--variants", "avx2", "-n", "1", "does-not-matter.ipynb"]) == 1
    assert "[avx2] skipped: this CPU lacks" in capsys.readouterr().out
    # with the real matmul, a variant that sets no instruction set runs anywhere
    monkeypatch.undo()
    threads1 = run_variants.VARIANTS["threads1"]
    assert run_variants.cannot_run_here(threads1, run_variants.variant_environment(threads1)) is None


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads the CPU's flags from /proc/cpuinfo")
def test_the_real_avx512_variant_is_skipped_exactly_on_cpus_without_avx512() -> None:
    flags = Path("/proc/cpuinfo").read_text().split("flags", 1)[1].splitlines()[0].split()
    avx512 = run_variants.VARIANTS["avx512"]
    reason = run_variants.cannot_run_here(avx512, run_variants.variant_environment(avx512))
    has_avx512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= set(flags)
    assert (reason is None) == has_avx512, reason


def test_a_variant_past_its_time_is_stopped_with_an_error() -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(SystemExit, match="did not finish within 1 s"):
        run_variants._run_with_deadline(sleeper, {}, 1, run_variants.VARIANTS["native"])
