"""What CI runs: a new environment every time, the README's command, and a browser test that cannot skip."""

from __future__ import annotations

from pathlib import Path

import pytest
import test_book_build
import test_workflows

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = (ROOT / ".ci" / "run").read_text()


def test_ci_starts_from_a_new_environment() -> None:
    assert SCRIPT.index("rm -rf .venv") < SCRIPT.index("python3 -m venv .venv")


def test_ci_runs_the_readmes_test_command_with_ci_set() -> None:
    command = test_workflows.TEST_SUITE
    assert command in SCRIPT.splitlines()
    assert SCRIPT.index("export CI=true") < SCRIPT.index(command)


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_a_missing_browser_fails_in_ci_and_skips_elsewhere(monkeypatch, ci, outcome) -> None:
    monkeypatch.setattr(test_book_build, "_chromium", lambda: None)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="Chromium is not installed"):
        test_book_build.require_browser()
