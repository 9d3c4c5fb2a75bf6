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


def run_first_lines(source: str, block: str, on_colab: bool) -> list[tuple[str, str]]:
    """Run a first cell up to the end of its Colab block, as IPython would; return the magics called."""
    code = TransformerManager().transform_cell(source[: source.index(block) + len(block)])
    calls: list[tuple[str, str]] = []
    shell = types.SimpleNamespace(run_line_magic=lambda name, line: calls.append((name, line)))
    fake = {"google.colab": types.ModuleType("google.colab")} if on_colab else {}
    with mock.patch.dict(sys.modules, fake):
        if not on_colab:
            sys.modules.pop("google.colab", None)
        exec(code, {"get_ipython": lambda: shell})
    return calls


def first_source(path) -> str:
    return "".join(release.first_code_cell(json.loads(path.read_text(encoding="utf-8")))["source"])


def test_every_chapter_installs_the_configured_release() -> None:
    """`python tests/release.py --check`: nothing out of date."""
    assert release.sync(write=False) == []


def test_the_version_is_set_once_and_everything_else_follows_it() -> None:
    version = release.release_version()
    assert tutorial_helpers.__version__ == version
    citation = yaml.safe_load((release.ROOT / "CITATION.cff").read_text())
    assert citation["version"] == version
    assert citation["repository-code"] == release.repository_url()
    for path in release.chapters():
        assert f"release v{version}" in first_source(path), path.name


def test_while_the_url_is_the_placeholder_colab_refuses_saying_what_to_set() -> None:
    assert release.repository_url() == release.PLACEHOLDER_URL  # as the book stands today
    block = release.colab_block(release.PLACEHOLDER_URL, "0.1.0")
    source = first_source(release.chapters()[0])
    assert block in source
    assert "%pip" not in block and release.PLACEHOLDER_URL not in block
    with pytest.raises(RuntimeError, match=r"repository\.url .* placeholder.*python tests/release\.py"):
        run_first_lines(source, block, on_colab=True)
    assert run_first_lines(source, block, on_colab=False) == []  # anywhere else: nothing at all


def test_a_published_book_installs_its_tag_on_colab_only() -> None:
    block = release.colab_block(PUBLISHED + "/", "1.2.3")
    source = release.with_block(first_source(release.chapters()[0]), block)
    assert run_first_lines(source, block, on_colab=True) == [
        ("pip", f'install -q "git+{PUBLISHED}@v1.2.3"')
    ]
    assert run_first_lines(source, block, on_colab=False) == []


def test_rewriting_the_block_keeps_the_rest_of_the_cell_and_is_idempotent() -> None:
    source = first_source(release.chapters()[0])
    block = release.colab_block(PUBLISHED, "2.0.0")
    once = release.with_block(source, block)
    assert release.with_block(once, block) == once
    assert once.endswith(source[source.index("\nfrom tutorial_helpers import"):])
    with pytest.raises(ValueError, match=r"google\.colab"):
        release.with_block("import sys\n", block)
