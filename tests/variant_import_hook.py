"""Patch a module right after its first import: the mechanism shared by the variants' ``sitecustomize`` files.

A variant of ``tests/run_variants.py`` changes TensorFlow or Keras in every
Python process it starts, nbval's notebook kernels included, through a
``sitecustomize.py`` on ``PYTHONPATH`` (``tests/xla_variant``,
``tests/tf32_variant``).  Nothing heavy may run at interpreter start, so each
of them calls :func:`patch_after_import`: a ``sys.meta_path`` finder waits for
the module to be imported, lets it load, then hands it to the patch.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType


class _Loader(importlib.abc.Loader):
    def __init__(self, wrapped: importlib.abc.Loader, patch: Callable[[ModuleType], None]) -> None:
        self._wrapped, self._patch = wrapped, patch

    def create_module(self, spec):
        return self._wrapped.create_module(spec)

    def exec_module(self, module) -> None:
        self._wrapped.exec_module(module)
        self._patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, fullname: str, patch: Callable[[ModuleType], None]) -> None:
        self._fullname, self._patch = fullname, patch

    def find_spec(self, fullname, path, target=None):
        if fullname != self._fullname:
            return None
        sys.meta_path.remove(self)  # find the real spec, then step aside for good
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader, self._patch)
        return spec


def patch_after_import(fullname: str, patch: Callable[[ModuleType], None]) -> None:
    """Call ``patch(module)`` once ``fullname`` has been imported for the first time."""
    sys.meta_path.insert(0, _Finder(fullname, patch))

