"""The book builds offline with warnings as errors, and every page works in a real browser.

The browser test serves the built HTML on a loopback port and opens every
page in headless Chromium (Debian's ``chromium`` package; ``.ci/run``
installs it).  Without Chromium it is skipped, with a message saying so,
except in CI (``CI=true``), where a missing browser fails the test.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest
import reader_pages
import release
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
PAGES = [TOC["root"]] + [entry["file"] for entry in TOC.get("chapters", [])]
# the chapters are the notebooks; the other pages (the introduction, how the book is checked) are text
CHAPTERS = [page for page in PAGES[1:] if (ROOT / f"{page}.ipynb").exists()]
SCREENSHOTS = ROOT / "_build" / "screenshots"


@pytest.fixture(scope="module")
def built_html() -> Path:
    """Build the book once into a temporary folder (never into the working tree)."""
    out = Path(tempfile.mkdtemp(prefix="book-build-"))
    jupyter_book = shutil.which("jupyter-book") or str(Path(sys.executable).parent / "jupyter-book")
    result = subprocess.run(
        [jupyter_book, "build", str(ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    yield out / "_build" / "html"
    shutil.rmtree(out, ignore_errors=True)


def test_book_builds_with_warnings_as_errors(built_html: Path) -> None:
    for page in PAGES:
        assert (built_html / f"{page}.html").exists(), f"{page} was not built"
        footer = (built_html / f"{page}.html").read_text(encoding="utf-8")
        assert "https://creativecommons.org/licenses/by/4.0/" in footer, f"{page}: no licence in the footer"
    # notebooks are rendered with their saved outputs, plots included
    for page in CHAPTERS:
        text = (built_html / f"{page}.html").read_text(encoding="utf-8")
        assert "cell_output" in text, f"{page}: no outputs rendered"
        assert "<img" in text, f"{page}: no plots rendered"


def test_launch_buttons_and_colab_cells_use_the_configured_repository(built_html: Path) -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    url = config["repository"]["url"].rstrip("/")
    owner_repo = urlparse(url).path.strip("/")
    page = (built_html / f"{CHAPTERS[0]}.html").read_text(encoding="utf-8")
    assert f"colab.research.google.com/github/{owner_repo}/blob/" in page
    assert f"mybinder.org/v2/gh/{owner_repo}/" in page
    # the Colab install line of every chapter comes from the same URL (tests/release.py)
    assert release.sync(write=False) == []


def test_the_pages_teach_and_the_checks_run_out_of_sight(built_html: Path) -> None:
    """No checking machinery in what a reader sees, no visible cell of assertions only, all headings listed.

    The machinery is explained once, on its own page (book/how_this_book_is_checked.md);
    the chapters and the introduction link to it.
    """
    problems = []
    for page in CHAPTERS:
        html = (built_html / f"{page}.html").read_text(encoding="utf-8")
        problems += [f"{page}: {p}" for p in reader_pages.page_problems(ROOT / f"{page}.ipynb", html)]
    intro = (built_html / f"{PAGES[0]}.html").read_text(encoding="utf-8")
    problems += [f"{PAGES[0]}: machinery in the text: ...{s}..." for s in reader_pages.machinery_words(intro)]
    assert problems == []
    assert "how_this_book_is_checked.html" in intro, "the introduction links to the checking page"


# ----------------------------------------------------------------- browser
def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require_browser() -> str:
    """Chromium's path; without it, skip the test, or fail it in CI (``CI=true``), which must not skip."""
    chromium = _chromium()
    if chromium is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI must open the pages in a browser, but Chromium is not installed "
                        "(.ci/run installs it: apt-get install chromium)")
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    return chromium


CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=5000",
]


class _PageParser(HTMLParser):
    """Collect what the checks need from a rendered page."""

    def __init__(self) -> None:
        super().__init__()
        self.h1, self.in_h1 = "", False
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.classes: list[str] = []
        self.images_in_outputs = 0
        self._output_depth = 0
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._depth += 1
        if "id" in attrs:
            self.ids.add(attrs["id"])
        classes = (attrs.get("class") or "").split()
        self.classes.extend(classes)
        if "cell_output" in classes and not self._output_depth:
            self._output_depth = self._depth
        if tag == "img" and self._output_depth:
            self.images_in_outputs += 1
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "h1":
            self.in_h1 = True

    def handle_endtag(self, tag):
        if self._output_depth and self._depth <= self._output_depth:
            self._output_depth = 0
        self._depth -= 1
        if tag == "h1":
            self.in_h1 = False

    def handle_data(self, data):
        if self.in_h1:
            self.h1 += data


@pytest.fixture(scope="module")
def served(built_html: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(built_html))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def _render(chromium: str, url: str, screenshot: Path | None = None) -> str:
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                            "--window-size=1280,2400", f"--screenshot={screenshot}", url],
                           capture_output=True, timeout=120, check=True)
        result = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                                capture_output=True, text=True, timeout=120, check=True)
        return result.stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_every_page_renders_in_a_real_browser(built_html: Path, served: str) -> None:
    chromium = require_browser()
    parsed: dict[str, _PageParser] = {}
    for page in PAGES:
        shot = SCREENSHOTS / f"{Path(page).name}.png" if page in (PAGES[0], CHAPTERS[0]) else None
        dom = _render(chromium, urljoin(served, f"{page}.html"), shot)
        parser = _PageParser()
        parser.feed(dom)
        parsed[page] = parser
        assert parser.h1.strip(), f"{page}: no title"
        assert not re.search(r"Traceback \(most recent call last\)", dom), f"{page}: shows a traceback"
        assert "stderr" not in parser.classes, f"{page}: shows a stderr block"
        if page == CHAPTERS[0]:  # formulas are typeset by the MathJax shipped in _static/
            assert "mjx-container" in dom, f"{page}: math was not rendered"
        if page in CHAPTERS:
            assert "cell_output" in parser.classes, f"{page}: no code outputs"
            assert parser.images_in_outputs >= 1, f"{page}: no rendered figure"
    for name in (PAGES[0], CHAPTERS[0]):
        assert (SCREENSHOTS / f"{Path(name).name}.png").stat().st_size > 10_000

    # every internal link resolves: the file exists, and so does the anchor
    html_root = built_html.resolve()
    for page, parser in parsed.items():
        base = urljoin(served, f"{page}.html")
        for href in parser.links:
            target = urlparse(urljoin(base, href))
            if not target.geturl().startswith(served) or target.scheme not in ("http", "https"):
                continue
            path = (html_root / target.path.lstrip("/")).resolve()
            if path.is_dir():
                path = path / "index.html"
            assert path.exists(), f"{page}: broken link {href}"
            if target.fragment and path.suffix == ".html":
                target_page = next((p for p in parsed if (html_root / f"{p}.html").resolve() == path), None)
                ids = parsed[target_page].ids if target_page else set(
                    re.findall(r'id="([^"]+)"', path.read_text(encoding="utf-8")))
                assert target.fragment in ids, f"{page}: link {href} names a missing anchor"
