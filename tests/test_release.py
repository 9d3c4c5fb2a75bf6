"""Colab readers install the release a chapter was written for, and never from the placeholder repository."""

from __future__ import annotations

import json
import sys
import types
from unittest import mock

import pytest
import release
import yaml
from IPython.core.inputtransformer2 import TransformerManager

import tutorial_helpers

PUBLISHED = "https://github.com/someone/custom-training-loops"


def run_colab_cell(source: str, on_colab: bool) -> list[tuple[str, str]]:
    """Run a chapter's Colab cell as IPython would; return the magics it called."""
    code = TransformerManager().transform_cell(source)
    calls: list[tuple[str, str]] = []
    shell = types.SimpleNamespace(run_line_magic=lambda name, line: calls.append((name, line)))
    fake = {"google.colab": types.ModuleType("google.colab")} if on_colab else {}
    with mock.patch.dict(sys.modules, fake):
        if not on_colab:
            sys.modules.pop("google.colab", None)
        exec(code, {"get_ipython": lambda: shell})
    return calls


def colab_cell(path) -> dict:
    return release.colab_cell(json.loads(path.read_text(encoding="utf-8")))


def test_every_chapter_installs_the_configured_release() -> None:
    """`python tests/release.py --check`: nothing out of date."""
    assert release.sync(write=False) == []


def test_the_colab_cell_is_first_and_off_the_web_page() -> None:
    for path in release.chapters():
        cell = colab_cell(path)
        assert release.GUARD in "".join(cell["source"]), path.name
        assert cell["metadata"]["tags"][0] == "remove-cell", path.name
        assert "prepare_notebook" not in "".join(cell["source"]), path.name


def test_the_version_is_set_once_and_everything_else_follows_it() -> None:
    version = release.release_version()
    assert tutorial_helpers.__version__ == version
    citation = yaml.safe_load((release.ROOT / "CITATION.cff").read_text())
    assert citation["version"] == version
    assert citation["repository-code"] == release.repository_url()
    for path in release.chapters():
        assert f"release v{version}" in "".join(colab_cell(path)["source"]), path.name


def test_while_the_url_is_the_placeholder_colab_refuses_saying_what_to_set() -> None:
    assert release.repository_url() == release.PLACEHOLDER_URL  # as the book stands today
    block = release.colab_block(release.PLACEHOLDER_URL, "0.1.0")
    source = "".join(colab_cell(release.chapters()[0])["source"])
    assert block in source
    assert "%pip" not in block and release.PLACEHOLDER_URL not in block
    with pytest.raises(RuntimeError, match=r"repository\.url .* placeholder.*python tests/release\.py"):
        run_colab_cell(source, on_colab=True)
    assert run_colab_cell(source, on_colab=False) == []  # anywhere else: nothing at all


def test_a_published_book_installs_its_tag_on_colab_only() -> None:
    source = release.colab_cell_source(PUBLISHED + "/", "1.2.3")
    assert run_colab_cell(source, on_colab=True) == [("pip", f'install -q "git+{PUBLISHED}@v1.2.3"')]
    assert run_colab_cell(source, on_colab=False) == []


def test_writing_the_colab_cell_tags_it_and_is_idempotent(tmp_path, monkeypatch) -> None:
    import shutil

    book = tmp_path / "book"
    book.mkdir()
    shutil.copy(release.chapters()[0], book / "01.ipynb")
    notebook = json.loads((book / "01.ipynb").read_text())
    cell = release.colab_cell(notebook)
    cell["metadata"]["tags"] = ["nbval-skip"]
    cell["source"] = ["import sys\n", release.GUARD + "\n", "    pass"]
    (book / "01.ipynb").write_text(json.dumps(notebook))
    monkeypatch.setattr(release, "ROOT", tmp_path)
    monkeypatch.setattr(release, "release_version", lambda: "2.0.0")
    monkeypatch.setattr(release, "repository_url", lambda: PUBLISHED)
    for name in ("tutorial_helpers/__init__.py", "CITATION.cff"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    assert release.sync(write=True) == ["book/01.ipynb"]
    assert release.sync(write=False) == []
    cell = release.colab_cell(json.loads((book / "01.ipynb").read_text()))
    assert cell["metadata"]["tags"] == ["remove-cell", "nbval-skip"]
    assert "".join(cell["source"]) == release.colab_cell_source(PUBLISHED, "2.0.0")
    notebook["cells"] = [c for c in notebook["cells"] if c is not release.colab_cell(notebook)]
    (book / "01.ipynb").write_text(json.dumps(notebook))
    with pytest.raises(ValueError, match="not the Colab cell"):
        release.sync(write=True)
