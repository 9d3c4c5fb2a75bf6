"""The release a reader on Colab installs, set in one place: ``version`` in pyproject.toml.

Every chapter's first code cell (tagged ``remove-cell``, so the web page
leaves it out; Colab shows it) installs ``tutorial_helpers`` on Colab (and only
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


COLAB_TAG = "remove-cell"  # Jupyter Book leaves the cell off the web page; Colab shows it


def colab_block(url: str, version: str) -> str:
    """The lines of a chapter's Colab cell that run on Colab only."""
    tag, url = f"v{version}", url.rstrip("/")
    if url == PLACEHOLDER_URL:
        return (
            f"{GUARD}  # the helpers of release {tag}\n"
            "    raise RuntimeError(\n"
            '        "repository.url in the book\'s _config.yml is still the "\n'
            '        "placeholder, so there is no published release to install "\n'
            f'        "tutorial_helpers {tag} from. Publisher: set repository.url, "\n'
            '        "then run python tests/release.py. Reader: pip install the "\n'
            '        "helpers from a copy of the book you trust."\n'
            "    )"
        )
    return f'{GUARD}  # the helpers of release {tag}\n    %pip install -q "git+{url}@{tag}"'


def colab_cell_source(url: str, version: str) -> str:
    """A chapter's whole Colab cell: its first code cell, left off the web page, run everywhere."""
    return (
        "# On Colab: install the helpers this chapter was written for.\n"
        "import sys\n\n" + colab_block(url, version)
    )


def chapters() -> list[Path]:
    return sorted((ROOT / "book").glob("*.ipynb"))


def colab_cell(notebook: dict) -> dict:
    """A chapter's Colab cell: its first code cell."""
    return next(c for c in notebook["cells"] if c["cell_type"] == "code")


def sync(write: bool) -> list[str]:
    """Bring every derived place in line with the release; return the files that were (or are) out of date."""
    version = release_version()
    wanted_source = colab_cell_source(repository_url(), version)
    stale: list[str] = []
    for path in chapters():
        notebook = json.loads(path.read_text(encoding="utf-8"))
        cell = colab_cell(notebook)
        tags = cell.setdefault("metadata", {}).get("tags", [])
        if "".join(cell["source"]) != wanted_source or COLAB_TAG not in tags:
            stale.append(path.relative_to(ROOT).as_posix())
            if write:
                if GUARD not in "".join(cell["source"]):
                    raise ValueError(f"{path.name}: the first code cell is not the Colab cell")
                cell["source"] = wanted_source.splitlines(keepends=True)
                cell["metadata"]["tags"] = [COLAB_TAG] + [t for t in tags if t != COLAB_TAG]
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
