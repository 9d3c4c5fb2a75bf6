"""The rules over the rendered pages (reader_pages) catch what they are for, on small made-up pages."""

from __future__ import annotations

from pathlib import Path

import nbformat
import reader_pages


def page(cells: str, toc: str = "") -> str:
    return (
        f'<html><body><nav id="pst-page-toc-nav">{toc}</nav>'
        f'<article class="bd-article">{cells}</article></body></html>'
    )


def cell(code: str, output: str | None = None, tags: str = "") -> str:
    out = "" if output is None else f'<div class="cell_output docutils container"><pre>{output}</pre></div>'
    return (
        f'<div class="cell docutils container {tags}"><div class="cell_input docutils container">'
        f"<pre>{code}</pre></div>{out}</div>"
    )


def test_machinery_words_are_found_in_prose_code_and_outputs_but_not_in_hidden_input() -> None:
    html = page(
        "<p>The unit tests check all four.</p>"
        + cell("# NBVAL_IGNORE_OUTPUT\nprint(1)", "1")
        + cell("x = 1", "an imitated CPU")
        + '<details class="hide above-input"><pre>run_variants</pre></details>'
        + "<p>An invariant of the loop; the Publisher must act.</p>"
    )
    found = reader_pages.machinery_words(html)
    assert len(found) == 4
    assert not any("run_variants" in snippet for snippet in found)
    assert reader_pages.machinery_words(page("<p>The loop equals fit() bit for bit.</p>")) == []


def test_a_visible_cell_that_only_checks_is_found() -> None:
    only_checks = "best = min(losses)\nfor loss in losses:\n    assert loss &gt;= best"
    html = page(
        cell(only_checks)
        + cell("assert x == 1", tags="tag_hide-input")  # hidden: fine
        + cell("assert x == 1\nprint(x)", "1")  # prints: teaches something
        + cell("y = f(x)")  # no assertion
    )
    assert reader_pages.assertion_only_cells(html) == [
        "best = min(losses)\nfor loss in losses:\n    assert loss >= best"
    ]


def test_a_heading_missing_from_the_contents_is_found(tmp_path: Path) -> None:
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Title\n\n## The `train_step`\n\n```\n## not a heading\n```"),
        nbformat.v4.new_code_cell("x = 1\n\n# ## Saving after a custom loop\n# text"),
        nbformat.v4.new_markdown_cell("## Compile()'s loss"),
    ])
    path = tmp_path / "chapter.ipynb"
    nbformat.write(notebook, path)
    toc = '<a href="#a">The <code>train_step</code></a><a href="#b">Compile()\u2019s loss</a>'
    assert reader_pages.missing_headings(path, page("", toc)) == ["Saving after a custom loop"]
    problems = reader_pages.page_problems(path, page(cell("assert x"), toc))
    assert problems == [
        "a visible cell of assertions only: 'assert x'",
        "heading missing from the page's contents: 'Saving after a custom loop'",
    ]
