"""Shared test set-up: a quiet TensorFlow, a non-interactive plot backend, seeds."""

from __future__ import annotations

import matplotlib
import pytest

from tutorial_helpers.runtime import quiet_import_tensorflow, set_seed

# Plots in unit tests go nowhere.  (Not through the MPLBACKEND variable: the
# notebook kernels that nbval starts would inherit it and show no figures.)
matplotlib.use("Agg")
quiet_import_tensorflow()


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Every test starts from the same seeds, so results do not depend on test order."""
    set_seed(0)
