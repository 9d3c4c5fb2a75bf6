"""What a reader sees on a rendered chapter: the rules that keep the book's checks off the page.

The book is checked by machinery a reader never needs (nbval, the other
machines' checks, hidden assertions).  It runs out of sight: in cells tagged
``remove-cell`` or ``hide-input``, in cell metadata, in ``tests/``, and on one
page of its own (``book/how_this_book_is_checked.md``).  These functions read
a built page and say where that machinery leaks into what a reader sees:

- a word of the machinery in the visible text (prose, code, outputs);
- a visible code cell made only of ``assert`` statements;
- a ``##`` heading of the notebook that is missing from the page's table of
  contents (for instance one written as a comment in a code cell).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from bs4 import BeautifulSoup

# The words of the checking machinery.  "variant" only at the start of a word
# ("invariant" is a word a chapter may use).
MACHINERY = re.compile(
    r"nbval|(?<![a-z])variants?\b|imitat\w*|unit tests?\b|test suite|chaotic|publisher|run_variants",
    re.IGNORECASE,
)
HIDDEN_INPUT_TAGS = ("tag_hide-input", "tag_hide-cell", "tag_remove-input")


def _article(html: str) -> BeautifulSoup:
    soup = BeautifulSoup(html, "html.parser")
    article = soup.select_one("article.bd-article") or soup.body or soup
    return article


def machinery_words(html: str) -> list[str]:
    """Each sentence-sized snippet of the page's visible text that names the checking machinery."""
    article = _article(html)
    for hidden in article.select("details.hide, script, style"):
        hidden.decompose()
    text = " ".join(article.get_text(" ").split())
    return [text[max(0, m.start() - 50): m.end() + 50] for m in MACHINERY.finditer(text)]


# Statements a check is made of: the assertions, and the names and loops that
# feed them.  A cell of only these that shows no output is a check, not a lesson.
_CHECK_PARTS = (ast.Assert, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.If)


def _only_assertions(code: str) -> bool:
    """Whether ``code`` is assertions and what feeds them, and nothing else (no call, no print)."""
    try:
        body = ast.parse(code).body
    except SyntaxError:
        return False

    def check_parts(statements: list[ast.stmt]) -> bool:
        return all(
            isinstance(node, _CHECK_PARTS)
            and (not isinstance(node, (ast.For, ast.If)) or check_parts(node.body + node.orelse))
            for node in statements
        )

    has_assert = any(isinstance(node, ast.Assert) for stmt in body for node in ast.walk(stmt))
    return has_assert and check_parts(body)


def assertion_only_cells(html: str) -> list[str]:
    """The source of each visible code cell that shows no output and only checks something."""
    found = []
    for cell in _article(html).select("div.cell"):
        if any(tag in cell.get("class", []) for tag in HIDDEN_INPUT_TAGS):
            continue
        source = cell.select_one("div.cell_input pre")
        if source is None or cell.select_one("div.cell_output") is not None:
            continue
        if _only_assertions(source.get_text()):
            found.append(source.get_text().strip())
    return found


def _plain(heading: str) -> str:
    """A heading as its table-of-contents entry reads: no markup, single spaces."""
    heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [text](link) -> text
    heading = heading.translate(str.maketrans("\u2018\u2019\u201c\u201d", "''\"\""))  # Sphinx's curly quotes
    return " ".join(heading.replace("`", "").replace("*", "").split())


def notebook_headings(notebook: Path) -> list[str]:
    """Every ``##`` heading of a notebook: in its markdown cells, and any written as a code comment."""
    headings = []
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if "remove-cell" in cell.get("metadata", {}).get("tags", []):
            continue
        lines = "".join(cell["source"]).splitlines()
        if cell["cell_type"] == "markdown":
            fenced = False
            for line in lines:
                fenced ^= line.lstrip().startswith("```")
                if not fenced and line.startswith("## "):
                    headings.append(_plain(line[3:]))
        else:
            headings += [_plain(m.group(1)) for line in lines if (m := re.match(r"^#\s*##\s+(.+)$", line))]
    return headings


def toc_entries(html: str) -> list[str]:
    """The entries of the page's own table of contents (the right-hand "Contents")."""
    nav = BeautifulSoup(html, "html.parser").select_one("#pst-page-toc-nav")
    return [] if nav is None else [" ".join(a.get_text().split()) for a in nav.select("a")]


def missing_headings(notebook: Path, html: str) -> list[str]:
    """The notebook's ``##`` headings that the page's table of contents lacks."""
    entries = {_plain(entry) for entry in toc_entries(html)}
    return [heading for heading in notebook_headings(notebook) if heading not in entries]


def page_problems(notebook: Path, html: str) -> list[str]:
    """Everything on one rendered chapter that a reader should not meet, as readable lines."""
    problems = [f"machinery in the text: ...{snippet}..." for snippet in machinery_words(html)]
    problems += [f"a visible cell of assertions only: {code!r}" for code in assertion_only_cells(html)]
    problems += [f"heading missing from the page's contents: {h!r}" for h in missing_headings(notebook, html)]
    return problems
