"""The variants check (tests/run_variants.py) catches a cell that another machine prints differently.

A tiny notebook is saved with the outputs of this machine: one cell prints a
sum over a float32 matrix product (the shape of a Dense layer's forward pass)
to nine significant digits, whose last bits depend on the instruction set the
matmul kernel uses; one prints something exact.
Run under ``ONEDNN_MAX_CPU_ISA=SSE41`` the check must fail, naming the first
cell and only that one.  A second notebook prints products that every
instruction set and thread count computes alike (no sums, so no order): only
the last-bit noise variant, which imitates an unknown CPU's summation order,
catches it.
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


# An outer product: each element is one rounded product, the same under any instruction set and
# thread count; printed to the last bit, so one ulp anywhere shows.
ORDER_FREE = (
    "x = tf.reshape(tf.range(1, 17, dtype=tf.float32) / 7, (16, 1))\n"
    "print(tf.matmul(x, tf.transpose(x)).numpy().ravel().tolist())"
)


def _order_free_notebook(folder: Path) -> Path:
    """A notebook saved with this machine's outputs of ORDER_FREE (computed with NumPy, no TensorFlow)."""
    x = (np.arange(1, 17, dtype=np.float32) / np.float32(7)).reshape(16, 1)
    text = f"{(x @ x.T).ravel().tolist()}\n"
    cells = [nbformat.v4.new_code_cell(SETUP, execution_count=1),
             nbformat.v4.new_code_cell(ORDER_FREE, execution_count=2)]
    cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "order_free.ipynb"
    nbformat.write(nb, path)
    return path


def test_only_the_noise_variant_catches_a_digit_that_no_instruction_set_moves(tmp_path, capsys) -> None:
    notebook = _order_free_notebook(tmp_path)
    variants = "avx2+threads1,sse41+threads4,noise1"
    assert run_variants.main(["--variants", variants, "-n", "1", str(notebook)]) == 1
    report = capsys.readouterr().out
    assert "order_free :: Cell 1  under noise1\n" in report, report  # under noise1, and only there
    assert "time per variant:" in report and "noise1" in report.split("time per variant:")[1]


def test_unknown_variant_is_refused(capsys) -> None:
    for bad in ("avx3", "noise", "noiseX"):
        with pytest.raises(SystemExit):
            run_variants.main(["--variants", bad])
        assert "unknown variant" in capsys.readouterr().err


def test_any_integer_seed_names_a_noise_variant_and_the_default_check_runs_three() -> None:
    assert run_variants.variant_named("noise12345").env == {"BOOK_NOISE_SEED": "12345"}
    defaults = run_variants.DEFAULT_VARIANTS
    assert sum(name.startswith("noise") for name in defaults) >= 3
    # no more notebook passes than the seven the check runs (it ran eight before Chapters 17-18)
    assert len(defaults) <= 7
    paired = [run_variants.VARIANTS[n] for n in defaults if "+" in n and not n.startswith("noise")]
    assert {v.fallback for v in paired} == {"threads1", "threads16"}
    for variant in paired:
        isa, threads = variant.name.split("+")
        assert variant.env == {**run_variants.VARIANTS[isa].env, **run_variants.VARIANTS[threads].env}
    # one, four and sixteen cores are all in the default check, four with last-bit noise
    cores = {run_variants.variant_named(n).env.get("TF_NUM_INTRAOP_THREADS") for n in defaults}
    assert {"1", "4", "16"} <= cores
    four = run_variants.variant_named("noise1+threads4")
    assert four.env == {"BOOK_NOISE_SEED": "1", "TF_NUM_INTRAOP_THREADS": "4", "OPENBLAS_NUM_THREADS": "4"}
    assert four.pythonpath == run_variants.variant_named("noise1").pythonpath and four.probe


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
    monkeypatch.setenv("BOOK_NOISE_SEED", "9")
    monkeypatch.setenv("PYTHONPATH", f"{run_variants.NOISE_SITE}:/elsewhere")
    noise = run_variants.variant_environment(run_variants.variant_named("noise2"))
    assert noise["BOOK_NOISE_SEED"] == "2" and noise["PYTHONPATH"].split(":") == [
        str(run_variants.NOISE_SITE), "/elsewhere"]
    native = run_variants.variant_environment(run_variants.VARIANTS["native"])
    assert "BOOK_NOISE_SEED" not in native and native["PYTHONPATH"] == "/elsewhere"


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


NOISE_SCRIPT = run_variants.NOISE_PROBE_SETUP + """
import json
from tensorflow.python.ops import nn_ops
from tutorial_helpers.timing import step_flops
image = tf.random.stateless_normal((2, 8, 8, 3), seed=(5, 6))
kernel = tf.random.stateless_normal((3, 3, 3, 4), seed=(7, 8))
def bits(t):
    return tf.bitcast(t, tf.int32).numpy().ravel().tolist()
raw = [bits(t) for t in run(gen_math_ops.mat_mul)]
noisy = [bits(t) for t in run(tf.matmul)]
graph = bits(tf.function(tf.matmul)(a, b))
conv = bits(tf.nn.conv2d(image, kernel, 1, "VALID")), bits(nn_ops.conv2d_v2(image, kernel, 1, "VALID"))
special = tf.matmul(tf.constant([[1.0]]), tf.constant([[0.0, float("inf"), -0.0, float("-inf")]]))
flops = step_flops(lambda x, y: tf.matmul(x, y), tf.TensorSpec(a.shape), tf.TensorSpec(b.shape))
print(json.dumps({"raw": raw, "noisy": noisy, "graph": graph, "conv": conv,
                  "special": special.numpy().tolist(), "flops": flops}))
"""


def test_the_noise_imitation_moves_half_of_every_result_and_gradient_by_one_ulp() -> None:
    def run(variant: str) -> dict:
        env = run_variants.variant_environment(run_variants.variant_named(variant))
        result = subprocess.run([sys.executable, "-c", NOISE_SCRIPT], env=env, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.splitlines()[-1])

    native, one, two = run("native"), run("noise1"), run("noise2")
    assert native["noisy"] == native["raw"] and native["conv"][0] == native["conv"][1]  # native: untouched
    moved = {}
    for seed, out in (("noise1", one), ("noise2", two)):
        assert out["raw"] == native["raw"]  # TensorFlow's own kernel is left alone
        for name, noisy, raw in zip(("result", "grad a", "grad b"), out["noisy"], out["raw"], strict=True):
            ulps = np.abs(np.array(noisy, dtype=np.int64) - np.array(raw, dtype=np.int64))
            moved[seed, name] = ulps > 0
            assert 0.35 < moved[seed, name].mean() < 0.85, (seed, name, moved[seed, name].mean())
            if name == "result":  # the forward result by exactly one ulp (the gradients also see it upstream)
                assert set(np.unique(ulps)) == {0, 1}
        assert out["graph"] == out["noisy"][0]  # the same in a tf.function as eagerly
        conv, conv_raw = (np.array(c, dtype=np.int64) for c in out["conv"])
        conv_ulps = np.abs(conv - conv_raw)
        assert set(np.unique(conv_ulps)) == {0, 1}  # convolutions too
        # zeros stay zeros and infinities stay infinite (a flipped bit would make them nan)
        assert out["special"] == [[0.0, float("inf"), 0.0, float("-inf")]]
        assert out["flops"] == native["flops"]  # the imitation adds no floating-point operations
    # another seed, another pattern: about half of the flips differ
    assert 0.3 < np.mean(moved["noise1", "result"] != moved["noise2", "result"]) < 0.7


def test_a_variant_that_would_change_nothing_is_refused() -> None:
    native_env = run_variants.variant_environment(run_variants.VARIANTS["native"])
    with pytest.raises(SystemExit, match="tf32 variant is not in effect"):
        run_variants.check_variant_is_active(run_variants.VARIANTS["tf32"], native_env)
    with pytest.raises(SystemExit, match="noise3 variant is not in effect"):
        run_variants.check_variant_is_active(run_variants.variant_named("noise3"), native_env)
    noise = run_variants.variant_named("noise3")
    run_variants.check_variant_is_active(noise, run_variants.variant_environment(noise))  # in effect


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


def test_a_paired_variant_runs_its_thread_count_alone_where_the_cpu_lacks_its_instructions(
    tmp_path, monkeypatch, capsys
) -> None:
    notebook = _order_free_notebook(tmp_path)
    monkeypatch.setattr(run_variants, "ISA_SMOKE", "import os, signal; os.kill(os.getpid(), signal.SIGILL)")
    ran = []
    real_run_variant = run_variants.run_variant

    def recording(variant, *args, **kwargs):
        ran.append(variant)
        return real_run_variant(variant, *args, **kwargs)

    monkeypatch.setattr(run_variants, "run_variant", recording)
    assert run_variants.main(["--variants", "avx512+threads16", "-n", "1", str(notebook)]) == 0
    assert "[avx512+threads16] this CPU lacks" in capsys.readouterr().out
    assert [v.name for v in ran] == ["threads16"] and ran[0].env["TF_NUM_INTRAOP_THREADS"] == "16"


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads the CPU's flags from /proc/cpuinfo")
def test_the_real_avx512_variant_is_skipped_exactly_on_cpus_without_avx512() -> None:
    flags = Path("/proc/cpuinfo").read_text().split("flags", 1)[1].splitlines()[0].split()
    avx512 = run_variants.VARIANTS["avx512+threads16"]
    reason = run_variants.cannot_run_here(avx512, run_variants.variant_environment(avx512))
    has_avx512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= set(flags)
    assert (reason is None) == has_avx512, reason


def test_a_variant_past_its_time_is_stopped_with_an_error() -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(SystemExit, match="did not finish within 1 s"):
        run_variants._run_with_deadline(sleeper, {}, 1, run_variants.VARIANTS["native"])


def test_the_slowest_notebooks_go_first_by_their_saved_cell_times(tmp_path, monkeypatch) -> None:
    """Two xdist workers take notebooks in order: slowest first, so neither waits alone at the end."""

    def saved(name: str, seconds: list[float]) -> str:
        cells = []
        for s in seconds:
            cell = nbformat.v4.new_code_cell("pass")
            cell.metadata["execution"] = {
                "iopub.execute_input": "2026-12-05T10:00:00.000000Z",
                "shell.execute_reply": f"2026-12-05T10:00:{s:09.6f}Z",
            }
            cells.append(cell)
        cells.append(nbformat.v4.new_markdown_cell("no timestamps"))
        nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / name)
        return name

    monkeypatch.setattr(run_variants, "ROOT", tmp_path)
    quick, slow = saved("a.ipynb", [1.0, 2.0]), saved("b.ipynb", [20.0, 30.5])
    middle = saved("c.ipynb", [12.0])
    (tmp_path / "d.ipynb").write_text("not json")
    assert run_variants.saved_seconds(slow) == pytest.approx(50.5)
    assert run_variants.saved_seconds("d.ipynb") == 0.0
    assert run_variants.longest_first([quick, "d.ipynb", slow, middle]) == [slow, middle, quick, "d.ipynb"]


DOUBLE_BACKPROP_SCRIPT = SETUP + """
import json
from tutorial_helpers import wgan
w = tf.Variable([[0.3], [-1.2], [2.0]])
real = tf.random.stateless_normal((4, 3), seed=(1, 2))
fake = tf.random.stateless_normal((4, 3), seed=(3, 4))
with tf.GradientTape() as tape:
    penalty = wgan.gradient_penalty(lambda x, training: tf.matmul(x, w), real, fake, tf.fill((4,), 0.5))
grad = tape.gradient(penalty, w)
print(json.dumps(None if grad is None else grad.numpy().ravel().tolist()))
"""


def test_under_the_noise_imitation_a_gradient_of_a_gradient_is_still_right() -> None:
    """A tape inside a tape (WGAN-GP's penalty) must see the perturbed gradients as differentiable.

    For a linear critic ``x @ w`` the penalty is ``(||w|| - 1)^2`` and its gradient
    ``2 (||w|| - 1) w / ||w||``: the noise may move its last bits, not drop the path.
    """
    w = np.array([0.3, -1.2, 2.0])
    expected = 2 * (np.linalg.norm(w) - 1) * w / np.linalg.norm(w)
    for variant in ("native", "noise1"):
        env = run_variants.variant_environment(run_variants.variant_named(variant))
        result = subprocess.run([sys.executable, "-c", DOUBLE_BACKPROP_SCRIPT], env=env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        got = json.loads(result.stdout.splitlines()[-1])
        assert got is not None, f"{variant}: no gradient of the penalty"
        np.testing.assert_allclose(got, expected, rtol=1e-5, err_msg=variant)
