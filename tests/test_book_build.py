"""The book builds offline from the saved notebooks, with warnings as errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_book_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    jupyter_book = shutil.which("jupyter-book") or str(Path(sys.executable).parent / "jupyter-book")
    result = subprocess.run(
        [jupyter_book, "build", str(ROOT), "--path-output", str(tmp_path), "-W", "-n", "--keep-going"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    html = tmp_path / "_build" / "html"
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]] + [entry["file"] for entry in toc.get("chapters", [])]
    for page in pages:
        page_html = html / f"{page}.html"
        assert page_html.exists(), f"{page_html} was not built"
    # notebooks are rendered with their saved outputs, plots included
    for page in pages[1:]:
        text = (html / f"{page}.html").read_text(encoding="utf-8")
        assert "cell_output" in text, f"{page}: no outputs rendered"
        assert "<img" in text, f"{page}: no plots rendered"
