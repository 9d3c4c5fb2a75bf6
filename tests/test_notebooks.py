"""Static checks of the saved notebooks: what nbval cannot see by itself.

nbval re-runs each notebook and compares outputs, but it happily passes a
notebook saved without outputs (nothing to compare) and cannot tell that cells
were run out of order.  These checks fail on exactly that, and on outputs
that would not survive a second run or another machine.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(
    p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
)
NOISE = {
    "a machine path": re.compile(r"/(work|root|home|tmp|Users|opt)/[\w./-]+|site-packages"),
    "a timestamp": re.compile(r"\b\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}"),
    "a memory address": re.compile(r"\bat 0x[0-9a-fA-F]{6,}"),
    "a TensorFlow start-up log": re.compile(r"I0000 00:00:|absl::InitializeLog|cuda drivers"),
    "a Keras progress bar": re.compile(r"━━━|\d+ms/step"),
}


def _text(output: dict) -> str:
    if output.get("output_type") == "stream":
        text = output.get("text", "")
    else:
        text = output.get("data", {}).get("text/plain", "")
    return "".join(text) if isinstance(text, list) else text


def _code_cells(path: Path) -> list[dict]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "book/ holds no notebooks"


def test_every_notebook_is_in_the_table_of_contents() -> None:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    listed = {entry["file"] for part in [toc] for entry in part.get("chapters", [])}
    for path in NOTEBOOKS:
        assert path.relative_to(ROOT).with_suffix("").as_posix() in listed, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_saved_executed_in_order_and_clean(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3"
    first_markdown = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    assert "".join(first_markdown["source"]).startswith("# "), "a chapter starts with a # title"

    cells = _code_cells(path)
    assert cells, "no code cells"
    counts = [c["execution_count"] for c in cells]
    assert None not in counts, f"cells never executed: {[i for i, n in enumerate(counts) if n is None]}"
    assert counts == list(range(1, len(cells) + 1)), f"not run top to bottom in a fresh kernel: {counts}"
    # the Colab cell (tests/release.py) is first and off the web page; the first code a reader sees
    # is prepare_notebook()
    assert "google.colab" in "".join(cells[0]["source"]), "the first code cell is the Colab cell"
    assert "remove-cell" in cells[0]["metadata"].get("tags", []), "the Colab cell is tagged remove-cell"
    assert "prepare_notebook(" in "".join(cells[1]["source"]), "the second code cell calls prepare_notebook()"

    with_output = 0
    for i, cell in enumerate(cells):
        outputs = cell["outputs"]
        with_output += bool(outputs)
        for out in outputs:
            assert out["output_type"] != "error", f"cell {i} saved an error: {out.get('ename')}"
            assert not (out["output_type"] == "stream" and out["name"] == "stderr"), (
                f"cell {i} saved stderr: {_text(out)[:200]!r}"
            )
            for what, pattern in NOISE.items():
                match = pattern.search(_text(out))
                assert not match, f"cell {i} output holds {what}: {match.group(0)!r}"
    # a chapter that defines before it imports has cells without output, but a
    # notebook whose outputs were cleared has none at all
    assert with_output >= len(cells) // 4, "most code cells have no saved output"


IGNORE_TAG = "nbval-ignore-output"
IGNORE_REASON_KEY = "ignore_output_because"
IGNORE_REASON = re.compile(r"^(timing|chaotic): \S.*$")
MAX_CHAOTIC_CELLS = 2


def ignored_cells(path: Path) -> list[tuple[int, str, str]]:
    """``(code cell index, reason kind, reason)`` for each cell whose output nbval ignores.

    Such a cell carries nbval's tag ``nbval-ignore-output``, and says why in
    its metadata, ``"ignore_output_because": "timing: ..."`` (wall-clock
    numbers) or ``"chaotic: ..."`` (a result that moves between machines,
    with how much it moves): in the notebook, out of the code a reader reads.
    The old marker, a ``# NBVAL_IGNORE_OUTPUT`` comment, counts too, without
    a reason, so that it is reported rather than missed.
    """
    found = []
    for i, cell in enumerate(_code_cells(path)):
        tags = cell.get("metadata", {}).get("tags", [])
        comment = "# NBVAL_IGNORE_OUTPUT" in [line.strip() for line in "".join(cell["source"]).splitlines()]
        if IGNORE_TAG not in tags and not comment:
            continue
        reason = "" if comment else str(cell.get("metadata", {}).get(IGNORE_REASON_KEY, ""))
        match = IGNORE_REASON.match(reason)
        found.append((i, match.group(1) if match else "", reason))
    return found


def _tree(cell: dict):
    import ast

    try:
        return ast.parse("".join(cell["source"]))
    except SyntaxError:
        return ast.parse("")


def _assigned_names(cell: dict) -> set[str]:
    """Names a code cell binds (assignments, loops, function and class definitions)."""
    import ast

    names = set()
    for node in ast.walk(_tree(cell)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def _asserts_on(cell: dict, names: set[str]) -> bool:
    """Whether a code cell holds an ``assert`` statement and reads one of ``names``.

    A comment or a string with the word in it is not an assertion.
    """
    import ast

    tree = _tree(cell)
    if not any(isinstance(node, ast.Assert) for node in ast.walk(tree)):
        return False
    read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return bool(read & names)


def ignored_cell_problems(path: Path) -> list[str]:
    """What is wrong with a notebook's ignored cells: no reason, no later assertion, too many chaotic."""
    cells = _code_cells(path)
    ignored = ignored_cells(path)
    problems = []
    for i, kind, reason in ignored:
        if not kind:
            problems.append(
                f"cell {i}: an ignored output says why in its metadata, "
                f"{IGNORE_REASON_KEY}: 'timing: ...' or 'chaotic: ...', not {reason!r} "
                f"(and with nbval's tag {IGNORE_TAG}, not a comment in the code)"
            )
        names = _assigned_names(cells[i])
        if not any(_asserts_on(c, names) for c in cells[i + 1 :]):
            problems.append(
                f"cell {i} ignores its output but no later cell asserts on what it computes"
            )
    chaotic = [i for i, kind, _ in ignored if kind == "chaotic"]
    if len(chaotic) > MAX_CHAOTIC_CELLS:
        problems.append(
            f"{len(chaotic)} cells ignore a chaotic output ({chaotic}); at most {MAX_CHAOTIC_CELLS} "
            "per chapter: print what the claim needs, with a margin, instead"
        )
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_ignored_cells_say_why_are_rare_and_are_followed_by_an_assertion(path: Path) -> None:
    assert ignored_cell_problems(path) == []


def _ignored(source: str, reason: str | None) -> object:
    import nbformat

    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = [IGNORE_TAG]
    if reason is not None:
        cell.metadata[IGNORE_REASON_KEY] = reason
    return cell


def test_the_ignored_cell_rules_catch_what_they_are_for(tmp_path: Path) -> None:
    import nbformat

    chaotic = [_ignored("print(1)", "chaotic: moves by 0.01 between machines") for _ in range(3)]
    cells = [nbformat.v4.new_code_cell("x = 1"), *chaotic,
             _ignored("print(2)", None), nbformat.v4.new_code_cell("assert x"),
             nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\nprint(3)")]
    nb = nbformat.v4.new_notebook(cells=cells)
    path = tmp_path / "bad.ipynb"
    nbformat.write(nb, path)
    assert [kind for _, kind, _ in ignored_cells(path)] == ["chaotic"] * 3 + ["", ""]
    problems = ignored_cell_problems(path)
    assert any("cell 4: an ignored output says why in its metadata" in p for p in problems)
    assert any("cell 6: an ignored output says why in its metadata" in p for p in problems)
    assert any("3 cells ignore a chaotic output ([1, 2, 3])" in p for p in problems)
    nb.cells = nb.cells[:2]  # one ignored cell, and no assertion after it
    nbformat.write(nb, path)
    assert ignored_cell_problems(path) == [
        "cell 1 ignores its output but no later cell asserts on what it computes"
    ]
    # the word alone is not an assertion, nor is one on something else
    measured = _ignored("score = 0.5\nprint(score)", "chaotic: moves")
    nb.cells = [measured] + [nbformat.v4.new_code_cell(s) for s in
                             ["# we assert nothing here", "print('assert score')", "y = 2\nassert y"]]
    nbformat.write(nb, path)
    assert ignored_cell_problems(path) == [
        "cell 0 ignores its output but no later cell asserts on what it computes"
    ]
    nb.cells.append(nbformat.v4.new_code_cell("best = score * 2\nassert best > 0.5"))
    nbformat.write(nb, path)
    assert ignored_cell_problems(path) == []


def test_the_ignored_cells_are_the_ones_listed_here() -> None:
    """The whole list, so that adding an ignored cell is a visible change to this file."""
    listed = {
        path.name: [(i, kind) for i, kind, _ in ignored_cells(path)] for path in NOTEBOOKS
    }
    listed = {name: cells for name, cells in listed.items() if cells}
    assert listed == EXPECTED_IGNORED_CELLS


EXPECTED_IGNORED_CELLS = {
    "02_writing_the_training_loop.ipynb": [(15, "timing")],
    "03_tape_and_tf_function.ipynb": [(36, "chaotic")],
    "05_losses.ipynb": [(23, "chaotic")],
    "09_gan.ipynb": [(6, "chaotic"), (20, "chaotic")],
    "10_the_speed_ladder.ipynb": [(13, "timing")],
    "13_input_pipelines.ipynb": [(7, "timing"), (8, "timing")],
    "14_mixed_precision_and_accumulation.ipynb": [(12, "timing")],
    "15_weight_decay_and_saving.ipynb": [(8, "chaotic")],
    "17_sequences_and_several_inputs.ipynb": [(15, "chaotic"), (17, "chaotic")],
    "18_fine_tuning_ema_and_profiling.ipynb": [(18, "chaotic"), (24, "timing")],
    "appendix_how_the_helpers_are_built.ipynb": [(20, "timing"), (22, "timing")],
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_has_goals_summary_and_checked_exercises(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    markdown = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    text = "\n".join(markdown)
    if "appendix" not in path.stem:
        assert "**What you will learn**" in markdown[0], "the first cell says what the chapter teaches"
    assert "## Summary" in text
    exercises = text.split("## Exercises", 1)
    assert len(exercises) == 2, "no exercises"
    items = re.findall(r"^\d+\. ", exercises[1], flags=re.M)
    assert 2 <= len(items) <= 4, f"{len(items)} exercises"
    checkers = re.findall(r"check\.(\w+)\(", exercises[1])
    assert checkers, "at least one exercise has a checker in tutorial_helpers.check"
    from tutorial_helpers import check

    for name in checkers:
        assert callable(getattr(check, name, None)), f"check.{name} does not exist"


# Each chapter writes its own version of something Keras (or TensorFlow) has
# built in; its summary names the built-in, so a reader who knows Keras can
# set the two side by side.  tests/test_keras_equivalents.py holds the pairs
# that are meant to agree to the same numbers.
BUILT_INS = {
    "01": ["keras.layers.Dense", "keras.optimizers.SGD", "fit()"],
    "02": ["Model.fit()", "Model.evaluate()", "keras.callbacks.History"],
    "03": ["keras.layers.Dense", "keras.layers.Dropout", "tf.norm", "steps_per_execution"],
    "04": ["train_step", "test_step", "evaluate()", "keras.metrics.F1Score"],
    "05": ["keras.losses.BinaryFocalCrossentropy"],
    "06": ["keras.optimizers.schedules.CosineDecay", "global_clipnorm", "clipnorm", "clipvalue"],
    "07": ["keras.regularizers.L1", "keras.regularizers.Regularizer"],
    "08": ["keras.callbacks.EarlyStopping", "keras.callbacks.BackupAndRestore",
           "keras.callbacks.TensorBoard"],
    "09": ["keras.Model.train_step", "tf.train.Checkpoint"],
    "10": ["steps_per_execution", "jit_compile", "Model.fit()"],
    "11": ["strategy.scope()", "tf.nn.compute_average_loss"],
    "12": ["keras.callbacks.TerminateOnNaN", "clipnorm"],
    "13": ["tf.data"],
    "14": ["gradient_accumulation_steps", "keras.optimizers.LossScaleOptimizer"],
    "15": ["keras.optimizers.AdamW", "keras.layers.Normalization"],
    "16": ["Model.evaluate()", "tf.math.confusion_matrix", "loss_weights"],
    "17": ["keras.losses.SparseCategoricalCrossentropy", "keras.layers.MultiHeadAttention",
           "keras.layers.Embedding(mask_zero=True)", "bucket_by_sequence_length"],
    "18": ["layer.trainable = False", "use_ema=True", "keras.callbacks.SwapEMAWeights",
           "keras.callbacks.TensorBoard(profile_batch"],
    "appendix_tf1_to_tf2": ["compute_loss"],
    "appendix_how_the_helpers_are_built": ["keras.callbacks.BackupAndRestore", "tf.train.CheckpointManager"],
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_summary_names_the_keras_built_ins_the_chapter_writes_out(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    summary = next("".join(c["source"]) for c in nb["cells"] if "## Summary" in "".join(c["source"]))
    summary = summary.split("## Exercises")[0]
    heading = r"^- \*\*Keras's built-ins for what this (?:chapter|appendix) (?:wrote|rewrote)\.\*\*(.+)$"
    bullet = re.search(heading, summary, flags=re.M)
    assert bullet, "the summary has no bullet naming Keras's built-ins"
    for name in BUILT_INS.get(path.stem) or BUILT_INS[path.stem.split("_")[0]]:
        assert name in bullet.group(1), f"the built-ins bullet does not name {name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_has_a_unique_id(path: Path) -> None:
    """nbformat 4.5 notebooks need cell ids (nbformat warns now, and will refuse later)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert (nb["nbformat"], nb["nbformat_minor"]) >= (4, 5)
    ids = [cell.get("id") for cell in nb["cells"]]
    assert None not in ids, f"cells {[i for i, x in enumerate(ids) if x is None]} have no id"
    assert len(set(ids)) == len(ids), "two cells share an id"


# "Show it, then import it": a lesson is code a reader can change and rerun,
# written in the chapter that teaches it, never a helper's source printed as text.
def _teaching_code(path: Path) -> list[str]:
    """The code cells a reader sees (not the ones left off the page)."""
    return [
        "".join(c["source"])
        for c in _code_cells(path)
        if "remove-cell" not in c.get("metadata", {}).get("tags", [])
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_chapter_prints_a_helpers_source_to_teach_it(path: Path) -> None:
    for source in _teaching_code(path):
        assert "getsource(" not in source, f"a lesson shown as printed source:\n{source[:200]}"


@pytest.mark.parametrize(
    "pattern, what",
    [
        (r"\.prefetch\(", "a tf.data pipeline with .prefetch("),
        (r"class \w+\(keras\.metrics\.Metric\)", "a keras.metrics.Metric subclass"),
        (r"\.add_loss\(", "a layer that calls add_loss("),
        (r"CheckpointManager\(", "a tf.train.CheckpointManager"),
        (r"class \w+\(keras\.Model\):[\s\S]*def train_step\(", "a train_step override"),
        (r"tf\.GradientTape\(\)", "a GradientTape"),
    ],
)
def test_the_book_writes_each_lesson_in_a_visible_code_cell(pattern: str, what: str) -> None:
    assert any(
        re.search(pattern, source) for path in NOTEBOOKS for source in _teaching_code(path)
    ), f"no visible code cell of the book writes {what}"


def _prose_words(path: Path) -> int:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return sum(
        len("".join(c["source"]).split())
        for c in nb["cells"]
        if c["cell_type"] == "markdown" and "remove-cell" not in c.get("metadata", {}).get("tags", [])
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_chapter_reads_in_one_sitting(path: Path) -> None:
    assert _prose_words(path) <= 2500, f"{_prose_words(path)} words of prose: split the chapter"
