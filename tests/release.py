"""The release a reader on Colab installs, set in one place: ``version`` in pyproject.toml.

Every chapter's first cell installs ``tutorial_helpers`` on Colab (and only
there) from the book's repository (``repository.url`` in _config.yml) at the
tag ``v<version>``: the helpers the chapter was written for, not whatever the
default branch holds on the day.  This script writes that line into every
chapter, and the version into ``tutorial_helpers.__version__`` and
CITATION.cff; ``--check`` only says what is out of date (the test suite runs
it).  README, "Cutting a release", says when to run it.

While ``repository.url`` is still the placeholder the book was written with,
no repository by that name is known to exist, and whoever registered it would
control what Colab readers install; so the line refuses, saying what to set.

    python tests/release.py          # write
    python tests/release.py --check  # exit 1, naming each file out of date
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER_URL = "https://github.com/tf-custom-training-loops/book"
GUARD = 'if "google.colab" in sys.modules:'


def release_version() -> str:
    """The one place the release is set: ``[project] version`` in pyproject.toml."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def repository_url() -> str:
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")


def colab_block(url: str, version: str) -> str:
    """The lines of a chapter's first cell that run on Colab only."""
    tag, url = f"v{version}", url.rstrip("/")
    if url == PLACEHOLDER_URL:
        return (
            f"{GUARD}  # on Colab: the helpers of release {tag}\n"
            "    raise RuntimeError(\n"
            '        "repository.url in the book\'s _config.yml is still the "\n'
            '        "placeholder, so there is no published release to install "\n'
            f'        "tutorial_helpers {tag} from. Publisher: set repository.url, "\n'
            '        "then run python tests/release.py. Reader: pip install the "\n'
            '        "helpers from a copy of the book you trust."\n'
            "    )\n"
        )
    return f'{GUARD}  # on Colab: the helpers of release {tag}\n    %pip install -q "git+{url}@{tag}"\n'


def with_block(source: str, block: str) -> str:
    """``source`` with its Colab block (from the guard to the next blank line) replaced by ``block``."""
    pattern = re.compile(rf"^{re.escape(GUARD)}.*?\n(?=\n)", re.S | re.M)
    if not pattern.search(source):
        raise ValueError(f"no line starting {GUARD!r} followed by a blank line in:\n{source}")
    return pattern.sub(lambda _: block, source, count=1)


def chapters() -> list[Path]:
    return sorted((ROOT / "book").glob("*.ipynb"))


def first_code_cell(notebook: dict) -> dict:
    return next(c for c in notebook["cells"] if c["cell_type"] == "code")


def sync(write: bool) -> list[str]:
    """Bring every derived place in line with the release; return the files that were (or are) out of date."""
    version, block = release_version(), colab_block(repository_url(), release_version())
    stale: list[str] = []
    for path in chapters():
        notebook = json.loads(path.read_text(encoding="utf-8"))
        cell = first_code_cell(notebook)
        source = "".join(cell["source"])
        wanted = with_block(source, block)
        if wanted != source:
            stale.append(path.relative_to(ROOT).as_posix())
            if write:
                cell["source"] = wanted.splitlines(keepends=True)
                path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for relative, pattern, replacement in [
        ("tutorial_helpers/__init__.py", r'^__version__ = ".*"$', f'__version__ = "{version}"'),
        ("CITATION.cff", r'^version: ".*"$', f'version: "{version}"'),
    ]:
        path = ROOT / relative
        text = path.read_text()
        wanted = re.sub(pattern, replacement, text, count=1, flags=re.M)
        if wanted != text:
            stale.append(relative)
            if write:
                path.write_text(wanted)
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only report what is out of date")
    args = parser.parse_args()
    stale = sync(write=not args.check)
    verb = "out of date" if args.check else "updated"
    for name in stale:
        print(f"{verb}: {name}")
    print(f"release v{release_version()} from {repository_url()}"
          + (" (the placeholder: the Colab line refuses)" if repository_url() == PLACEHOLDER_URL else ""))
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
