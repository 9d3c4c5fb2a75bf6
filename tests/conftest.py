"""Shared test set-up: a quiet TensorFlow, a non-interactive plot backend, seeds."""

from __future__ import annotations

import matplotlib
import pytest
from run_variants import saved_seconds

from tutorial_helpers.runtime import quiet_import_tensorflow, set_seed

# Plots in unit tests go nowhere.  (Not through the MPLBACKEND variable: the
# notebook kernels that nbval starts would inherit it and show no figures.)
matplotlib.use("Agg")
quiet_import_tensorflow()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The notebooks first, slowest first (by their saved cell times), then the unit tests.

    pytest-xdist hands out whole files in this order to its two workers; the
    longest first lets both finish together instead of one waiting on a slow
    notebook at the end.  Cells within a notebook keep their order.
    """
    position = {id(item): i for i, item in enumerate(items)}

    def key(item: pytest.Item) -> tuple:
        path = item.path
        if path.suffix == ".ipynb":
            return (0, -saved_seconds(path), str(path), position[id(item)])
        return (1, 0.0, "", position[id(item)])

    items.sort(key=key)


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
