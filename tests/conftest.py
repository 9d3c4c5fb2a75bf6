"""Shared test set-up: a quiet TensorFlow, a non-interactive plot backend, seeds."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest

from tutorial_helpers.runtime import quiet_import_tensorflow, set_seed

quiet_import_tensorflow()


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Every test starts from the same seeds, so results do not depend on test order."""
    set_seed(0)
