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


@pytest.fixture(scope="module")
def regression():
    """300 samples of the small regression problem, split 240/60: the trainer's tests share it.

    (``test_loops.py`` and ``test_custom_fit.py`` define their own, larger ``regression``.)
    """
    from tutorial_helpers import data  # after quiet_import_tensorflow

    x, y = data.make_regression_data(n=300, seed=0)
    return data.train_val_split(x, y, val_fraction=0.2, seed=0)
