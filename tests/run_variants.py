"""Run every notebook as other readers' machines would, and name each cell that does not reproduce.

    python tests/run_variants.py                 # the default variants, every notebook in book/
    python tests/run_variants.py --variants noise7,avx2+threads1 book/07_regularization.ipynb

A float32 matmul's last bits depend on the order in which it sums its
products, and that order depends on the reader's CPU: its instruction set, its
number of cores, and its cache sizes and microarchitecture, from which oneDNN
and Eigen size their blocks and pick their kernels.  Each *variant* imitates
another machine on this one, through environment variables and ``sitecustomize``
folders that the notebook kernels inherit, and re-runs the notebooks with nbval:

* ``avx2+threads1``, ``sse41+threads4``, ``avx512+threads16``: another
  instruction set (``ONEDNN_MAX_CPU_ISA`` for TensorFlow's matmul,
  ``OPENBLAS_CORETYPE`` for NumPy's and SciPy's BLAS) together with another
  core count (``TF_NUM_INTRAOP_THREADS``, ``OPENBLAS_NUM_THREADS``): a laptop
  with one free core, an old CPU with four, an Intel server with sixteen.  Each
  half also exists alone (``avx2``, ``avx512``, ``sse41``, ``avx``,
  ``threads1``, ``threads4``, ``threads16``), not by default.
* ``noise<seed>`` (``noise1``, ``noise2``, ``noise3`` by default; any integer
  seed works): an *unknown* CPU's summation order imitated
  (``tests/noise_variant``): the last mantissa bit of a seeded pseudo-random
  half of the elements of every float32 matmul and convolution result, forward
  and both gradients, flipped.  No environment variable imitates a CPU's cache
  sizes or microarchitecture; this does what any of them does, one ulp here
  and there, and outputs are compared strictly.
* ``xla``: every Keras ``compile()`` resolved to ``jit_compile=True`` (what a GPU
  reader with op determinism off gets).  XLA changes the arithmetic itself, so
  its outputs are not compared (``--nbval-lax``): every cell must run and every
  assertion in the notebook must hold.
* ``tf32``: a GPU's TF32 arithmetic imitated (``tests/tf32_variant``): the inputs
  and incoming gradients of float32 matmuls and convolutions rounded to 10
  mantissa bits, except on CPU devices.  A GPU changes printed digits, so a
  changed output is *reported*, not failed: every cell must run and every
  assertion must hold, and the report lists the outputs a GPU reader sees
  change (the README's "On a GPU" section quotes it).
* ``claims``: this machine as it is, outputs not compared: the check a reader
  on another architecture (Arm) or with another TensorFlow build runs.

An imitation can take instruction sets away, not add them: on a CPU that lacks
a variant's instruction set (``avx512`` on an AVX2-only CPU, where OpenBLAS's
AVX-512 kernels die with SIGILL) a paired variant runs its thread count alone,
and a variant of an instruction set alone is skipped, each saying so.  Before a
``noise``, ``xla`` or ``tf32`` run a probe proves that the variant really
changes the arithmetic.  A variant that runs past ``--timeout`` seconds is
stopped with an error, not left to hang.  Each variant's time is printed, and
a table of all of them at the end.

Exit status 0 when every notebook reproduces under every variant that runs here;
otherwise 1, after a table that names each notebook and cell that failed, under
which variants, and the first lines of what differed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
XLA_SITE = ROOT / "tests" / "xla_variant"
TF32_SITE = ROOT / "tests" / "tf32_variant"
NOISE_SITE = ROOT / "tests" / "noise_variant"
VARIANT_SITES = (XLA_SITE, TF32_SITE, NOISE_SITE)
# Set by a variant, cleared for the others, so the caller's shell cannot leak into a run.
NUMERIC_ENV = (
    "ONEDNN_MAX_CPU_ISA", "TF_NUM_INTRAOP_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS",
    "BOOK_NOISE_SEED",
)


@dataclass(frozen=True)
class Variant:
    name: str
    env: dict[str, str]
    what: str
    compare_outputs: bool = True
    pythonpath: tuple[Path, ...] = field(default=())
    # changed outputs are listed as expected changes, not failures (errors still fail)
    report_changes: bool = False
    # Python that exits non-zero unless the variant really changes the arithmetic
    probe: str = ""
    # the variant to run instead on a CPU that lacks this one's instruction set
    fallback: str = ""


XLA_PROBE = (
    "from tutorial_helpers.runtime import set_seed; set_seed(0); import keras;"
    "m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]);"
    "m.compile(optimizer='sgd', loss='mse'); assert m.jit_compile is True, m.jit_compile"
)
TF32_PROBE = (
    "from tutorial_helpers.runtime import set_seed; set_seed(0); import tensorflow as tf;"
    "a = tf.constant([[1 + 2.0**-12]]); b = tf.constant([[1.0]]);"
    "assert float(tf.matmul(a, b)[0, 0]) == 1.0, 'matmul not rounded to TF32'"
)
# A matmul and the gradients of a loss through it, by any matmul function:
# shared by the noise probe and the noise imitation's unit test.
NOISE_PROBE_SETUP = """
from tutorial_helpers.runtime import quiet_import_tensorflow
tf = quiet_import_tensorflow()
from tensorflow.python.ops import gen_math_ops
a = tf.random.stateless_normal((32, 24), seed=(1, 2))
b = tf.random.stateless_normal((24, 16), seed=(3, 4))
def run(matmul):
    with tf.GradientTape() as tape:
        tape.watch([a, b])
        y = matmul(a, b)
        loss = tf.reduce_sum(y * y)
    return [y, *tape.gradient(loss, [a, b])]
"""
# The patched matmul against TensorFlow's raw kernel: results and both gradients
# must differ in about half their elements, the result by exactly one ulp.
NOISE_PROBE = NOISE_PROBE_SETUP + """
assert getattr(tf.matmul, "noise_imitation", False), "tf.matmul is not patched"
for name, got, raw in zip(("result", "gradient of a", "gradient of b"), run(tf.matmul),
                          run(gen_math_ops.mat_mul)):
    ulps = tf.abs(tf.bitcast(got, tf.int32) - tf.bitcast(raw, tf.int32))
    moved = float(tf.reduce_mean(tf.cast(ulps > 0, tf.float32)))
    assert 0.3 < moved, f"the {name} is not perturbed ({moved:.0%} of its elements moved)"
    if name == "result":
        assert int(tf.reduce_max(ulps)) == 1, "the result moved by more than one ulp"
"""


# What must survive a variant's settings on this CPU.  OpenBLAS forced onto the
# kernels of an instruction set this CPU lacks (SkylakeX's AVX-512 on an AVX2-only
# CPU) dies with SIGILL in every notebook kernel: an imitation can take
# instruction sets away, not add them.
ISA_SMOKE = "import numpy as np; np.ones((256, 256)) @ np.ones((256, 256))"


def cannot_run_here(variant: Variant, env: dict[str, str]) -> str | None:
    """Why this CPU cannot run ``variant`` (it lacks the instructions imitated), or None if it can."""
    result = subprocess.run(
        [sys.executable, "-c", ISA_SMOKE], env=env, capture_output=True, text=True, timeout=300
    )
    if result.returncode < 0:
        try:
            how = signal.Signals(-result.returncode).name
        except ValueError:
            how = f"signal {-result.returncode}"
        settings = " ".join(f"{k}={v}" for k, v in variant.env.items()) or "no settings"
        return f"this CPU lacks the instructions it imitates (a NumPy matmul under {settings} died: {how})"
    if result.returncode != 0:
        raise SystemExit(f"a NumPy matmul failed under the {variant.name} variant:\n{result.stderr[-2000:]}")
    return None


def _isa(onednn: str, openblas: str) -> dict[str, str]:
    return {"ONEDNN_MAX_CPU_ISA": onednn, "OPENBLAS_CORETYPE": openblas}


def _threads(n: int) -> dict[str, str]:
    return {"TF_NUM_INTRAOP_THREADS": str(n), "OPENBLAS_NUM_THREADS": str(n)}


def noise_variant(seed: int, threads: int | None = None) -> Variant:
    """The last-bit noise variant with this seed (``noise<seed>``), on ``threads`` cores if given
    (``noise<seed>+threads<n>``: an unknown CPU with that many cores)."""
    name, env, cpu = f"noise{seed}", {"BOOK_NOISE_SEED": str(seed)}, "an unknown CPU's"
    if threads is not None:
        name, env = f"{name}+threads{threads}", {**env, **_threads(threads)}
        cpu = f"an unknown {threads}-core CPU's"
    return Variant(
        name,
        env,
        f"{cpu} summation order: one ulp flipped in half of every matmul's results and gradients",
        pythonpath=(NOISE_SITE,),
        probe=NOISE_PROBE,
    )


def _paired(isa: str, threads: str, what: str) -> Variant:
    a, b = VARIANTS[isa], VARIANTS[threads]
    return Variant(f"{isa}+{threads}", {**a.env, **b.env}, what, fallback=threads)


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("native", {}, "this machine as it is (what plain `pytest` runs)"),
        Variant("avx2", _isa("AVX2", "Haswell"), "a CPU without AVX-512 (most laptops)"),
        Variant("avx512", _isa("AVX512_CORE", "SkylakeX"), "an AVX-512 server CPU, no newer extensions"),
        Variant("avx", _isa("AVX", "Sandybridge"), "AVX without AVX2 or FMA (a CPU from 2011)"),
        Variant("sse41", _isa("SSE41", "Nehalem"), "an old CPU: SSE4.1, no AVX"),
        Variant("threads1", _threads(1), "one core"),
        Variant("threads4", _threads(4), "four cores"),
        Variant("threads16", _threads(16), "sixteen cores"),
        Variant("claims", {}, "this machine, outputs not compared: every cell runs, every assertion holds",
                compare_outputs=False),
        Variant(
            "xla",
            {},
            "XLA in every compile(); outputs not compared, assertions must hold",
            compare_outputs=False,
            pythonpath=(XLA_SITE,),
            probe=XLA_PROBE,
        ),
        Variant(
            "tf32",
            {},
            "a GPU's TF32 matmuls imitated; changed outputs reported, assertions must hold",
            report_changes=True,
            pythonpath=(TF32_SITE,),
            probe=TF32_PROBE,
        ),
    )
}
for _isa_name, _threads_name, _what in (
    ("avx2", "threads1", "a laptop without AVX-512, one core"),
    # not in the default check: TensorFlow's own wheels need AVX, so no reader has this CPU
    ("sse41", "threads4", "an old CPU (SSE4.1, no AVX), four cores"),
    ("avx512", "threads16", "an AVX-512 server CPU, sixteen cores"),
):
    VARIANTS[f"{_isa_name}+{_threads_name}"] = _paired(_isa_name, _threads_name, _what)
# One, four and sixteen cores; three noise seeds, the first on four cores (a reader's laptop);
# XLA; TF32.  Seven notebook passes.
DEFAULT_VARIANTS = (
    "avx2+threads1", "avx512+threads16", "noise1+threads4", "noise2", "noise3", "xla", "tf32",
)


def variant_named(name: str) -> Variant | None:
    """The variant called ``name`` (``noise<seed>`` for any integer seed), or None."""
    if name in VARIANTS:
        return VARIANTS[name]
    match = re.fullmatch(r"noise(-?\d+)(?:\+threads(\d+))?", name)
    if not match:
        return None
    return noise_variant(int(match.group(1)), None if match.group(2) is None else int(match.group(2)))


@dataclass
class Failure:
    notebook: str
    cell: str
    message: str
    # True when the cell ran but printed something else; False for an error
    outputs_differ: bool = False


def variant_environment(variant: Variant) -> dict[str, str]:
    """The environment a variant's nbval run (and its notebook kernels) gets."""
    env = {k: v for k, v in os.environ.items() if k not in NUMERIC_ENV}
    env.update(variant.env)
    # the caller's PYTHONPATH, without any variant's folder (a run inside a variant)
    inherited = [p for p in env.pop("PYTHONPATH", "").split(os.pathsep) if p]
    inherited = [p for p in inherited if Path(p).resolve() not in VARIANT_SITES]
    parts = [str(p) for p in variant.pythonpath] + inherited
    if parts:
        env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def check_variant_is_active(variant: Variant, env: dict[str, str]) -> None:
    """Fail loudly if a variant would silently leave the arithmetic as it is."""
    if not variant.probe:
        return
    result = subprocess.run([sys.executable, "-c", variant.probe], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"the {variant.name} variant is not in effect:\n{result.stderr[-2000:]}")


def saved_seconds(notebook: str | Path) -> float:
    """How long a notebook's cells took when it was last saved (their ``execution`` stamps); 0 if unknown."""
    total = 0.0
    try:
        cells = json.loads((ROOT / notebook).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return 0.0
    for cell in cells:
        stamps = cell.get("metadata", {}).get("execution", {})
        try:
            start = datetime.fromisoformat(stamps["iopub.execute_input"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(stamps["shell.execute_reply"].replace("Z", "+00:00"))
        except (KeyError, TypeError, ValueError):
            continue
        total += max((end - start).total_seconds(), 0.0)
    return total


def longest_first(notebooks: list[str]) -> list[str]:
    """The slowest notebooks first, so that two workers finish together (pytest-xdist hands out in order)."""
    return sorted(notebooks, key=lambda nb: -saved_seconds(nb))


def nbval_command(variant: Variant, notebooks: list[str], workers: int, report: Path) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "pytest",
        *notebooks,
        "-o",
        "addopts=",  # the project's addopts run the unit tests too; here only notebooks
        "--nbval" if variant.compare_outputs else "--nbval-lax",
        "--nbval-current-env",
        f"--nbval-sanitize-with={ROOT / 'tests' / 'nbval_sanitize.cfg'}",
        "--nbval-cell-timeout=300",
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
        "-q",
        "--no-header",
        "-rN",
    ]
    if workers > 1:
        command += ["-n", str(workers), "--dist", "loadscope"]
    return command


def failures_in(report: Path) -> list[Failure]:
    """Read the failed cells from pytest's JUnit XML report."""
    failures = []
    for case in ET.parse(report).getroot().iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is None:
            continue
        notebook = case.get("classname", "").replace(".ipynb", "").split(".")[-1] or case.get("file", "?")
        text = (problem.get("message") or "") + "\n" + (problem.text or "")
        differ = "Cell outputs differ" in text and "caused an exception" not in text
        failures.append(Failure(notebook, case.get("name", "?"), _gist(text), outputs_differ=differ))
    return failures


def _gist(text: str, lines: int = 6) -> str:
    """The lines of nbval's report that show what differed."""
    text = re.sub(r"(?:\x1b|#x1B)\[[0-9;]*m", "", text)  # the traceback's colours, raw or escaped
    keep = list(
        dict.fromkeys(  # nbval repeats its diff in the message and the text: once each
            line.strip()
            for line in text.splitlines()
            if line.strip().startswith(("+", "-", "E ", "AssertionError", "Error"))
            and not line.strip().startswith(("+++", "---"))
        )
    )
    first = text.strip().splitlines()[:1] or ["(no message)"]
    return " | ".join(keep[:lines])[:400] or first[0][:400]


def _run_with_deadline(
    command: list[str], env: dict[str, str], timeout: float, variant: Variant
) -> subprocess.CompletedProcess:
    """Run ``command``; past ``timeout`` seconds kill it and everything it started, and say so."""
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise SystemExit(
            f"the {variant.name} variant did not finish within {timeout:.0f} s "
            f"(a notebook kernel that died or hangs?):\n{stdout[-2000:]}{stderr[-2000:]}"
        ) from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def run_variant(
    variant: Variant, notebooks: list[str], workers: int, timeout: float = 1800
) -> tuple[list[Failure], float, int]:
    env = variant_environment(variant)
    check_variant_is_active(variant, env)
    with tempfile.TemporaryDirectory(prefix=f"variant-{variant.name}-") as tmp:
        report = Path(tmp) / "report.xml"
        start = time.perf_counter()
        result = _run_with_deadline(nbval_command(variant, notebooks, workers, report), env, timeout, variant)
        seconds = time.perf_counter() - start
        if not report.exists():
            raise SystemExit(
                f"pytest did not run for variant {variant.name}:\n{result.stdout[-3000:]}"
                f"{result.stderr[-3000:]}"
            )
        failures = failures_in(report)
        cells = sum(1 for _ in ET.parse(report).getroot().iter("testcase"))
    if result.returncode not in (0, 1) or (result.returncode == 1 and not failures):
        raise SystemExit(
            f"pytest failed without naming a cell under {variant.name}:\n{result.stdout[-3000:]}"
        )
    return failures, seconds, cells


def _cell_number(cell: str) -> int:
    digits = "".join(ch for ch in cell.rsplit(" ", 1)[-1] if ch.isdigit())
    return int(digits) if digits else -1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: every one in book/)")
    parser.add_argument(
        "--variants",
        default=",".join(DEFAULT_VARIANTS),
        help=f"comma-separated, from: {', '.join(VARIANTS)}, noise<seed> "
        f"(default: {','.join(DEFAULT_VARIANTS)})",
    )
    parser.add_argument("-n", "--workers", type=int, default=2, help="pytest-xdist workers (default 2)")
    parser.add_argument(
        "--timeout", type=float, default=1800, help="seconds one variant may run (default 1800)"
    )
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if variant_named(n) is None]
    if unknown or not names:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}, noise<seed>")
    notebooks = args.notebooks or sorted(str(p.relative_to(ROOT)) for p in (ROOT / "book").glob("*.ipynb"))
    notebooks = longest_first(notebooks)

    by_cell: dict[tuple[str, str], dict[str, str]] = {}
    changes: dict[str, list[Failure]] = {}
    skipped: list[str] = []
    times: dict[str, float] = {}
    started = time.perf_counter()
    for name in names:
        variant = variant_named(name)
        print(
            f"[{name}] {variant.what}: {' '.join(f'{k}={v}' for k, v in variant.env.items()) or '-'}",
            flush=True,
        )
        reason = cannot_run_here(variant, variant_environment(variant))
        if reason and variant.fallback:
            variant = VARIANTS[variant.fallback]
            print(f"[{name}] {reason}: runs as {variant.name} alone", flush=True)
        elif reason:
            print(f"[{name}] skipped: {reason}", flush=True)
            skipped.append(name)
            continue
        failures, seconds, cells = run_variant(variant, notebooks, args.workers, args.timeout)
        times[name] = seconds
        if variant.report_changes:
            changes[name] = [f for f in failures if f.outputs_differ]
            failures = [f for f in failures if not f.outputs_differ]
        changed = f", {len(changes[name])} printed something else" if name in changes else ""
        print(f"[{name}] {cells} cells, {len(failures)} failed{changed}, {seconds:.0f} s", flush=True)
        for failure in failures:
            by_cell.setdefault((failure.notebook, failure.cell), {})[name] = failure.message

    print("\ntime per variant:")
    for name, seconds in times.items():
        print(f"  {name:<18} {seconds:6.0f} s")
    print(f"  {'all':<18} {time.perf_counter() - started:6.0f} s")
    for name, changed in changes.items():
        print(f"\n[{name}] {len(changed)} cell(s) print something else (expected there; "
              "+ saved, - this run):")
        for change in sorted(changed, key=lambda f: (f.notebook, _cell_number(f.cell))):
            print(f"  {change.notebook} :: {change.cell}: {change.message}")
    ran = [name for name in names if name not in skipped]
    if not ran:
        print(f"no variant could run on this CPU ({', '.join(names)} skipped)")
        return 1
    if not by_cell:
        also = f"; skipped on this CPU: {', '.join(skipped)}" if skipped else ""
        print(f"every notebook reproduced under every variant ({', '.join(ran)}){also}")
        return 0
    print(f"\n{len(by_cell)} cell(s) did not reproduce on every imitated machine (+ saved, - this run):")
    for (notebook, cell), per_variant in sorted(by_cell.items()):
        print(f"  {notebook} :: {cell}  under {', '.join(per_variant)}")
        for name, message in per_variant.items():
            print(f"      [{name}] {message}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
