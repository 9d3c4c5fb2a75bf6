"""The licences: MIT for the code (as pyproject.toml says), CC BY 4.0 for the text, named where read."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_the_code_licence_is_the_one_pyproject_declares() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
    assert declared == "MIT"
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in licence


def test_the_text_licence_is_cc_by_4_0_in_full() -> None:
    text = (ROOT / "LICENSE-TEXT").read_text()
    assert "Creative Commons Attribution 4.0 International Public License" in text
    for section in range(1, 9):
        assert f"Section {section} -- " in text, f"section {section} of the legal code is missing"


def test_the_readme_the_footer_and_the_citation_name_both_licences() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "MIT License (`LICENSE`)" in readme and "CC BY 4.0" in readme and "`LICENSE-TEXT`" in readme
    footer = yaml.safe_load((ROOT / "_config.yml").read_text())["html"]["extra_footer"]
    assert "https://creativecommons.org/licenses/by/4.0/" in footer and "MIT License" in footer
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert citation["license"] == ["MIT", "CC-BY-4.0"]
    assert citation["title"] and citation["authors"] and citation["message"]
