"""Checkers for Chapter 16's exercises (kept apart so that ``check.py`` stays small)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tutorial_helpers.check import _array, _run, _yours


def per_class_recall(your_fn: Callable) -> bool:
    """Chapter 16: ``your_fn(y_true, y_pred, num_classes)`` -> the recall of each class.

    Recall of class c: of the samples whose true class is c, the share
    predicted as c.  A class that never occurs has recall 0 (scikit-learn's
    convention with ``zero_division=0``).
    """
    from sklearn.metrics import recall_score

    def body() -> str | None:
        rng = np.random.default_rng(0)
        for num_classes, n in ((10, 300), (4, 50), (5, 40)):
            y_true = rng.integers(0, num_classes - (num_classes == 5), n)  # class 4 absent once
            y_pred = np.where(rng.random(n) < 0.7, y_true, rng.integers(0, num_classes, n))
            expected = recall_score(y_true, y_pred, labels=range(num_classes), average=None, zero_division=0)
            got = _array(_yours(your_fn, y_true, y_pred, num_classes), (num_classes,))
            if not np.allclose(got, expected, atol=1e-6):
                worst = int(np.abs(got - expected).argmax())
                return (f"class {worst}: expected {expected[worst]:.4f}, got {got[worst]:.4f} "
                        f"({num_classes} classes)")
        return None

    return _run("per_class_recall", body)
