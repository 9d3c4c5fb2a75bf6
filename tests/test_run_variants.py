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
import sys
from pathlib import Path

import nbformat
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
