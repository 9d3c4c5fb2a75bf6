"""Force XLA in every Keras ``compile()``: the XLA variant of ``tests/run_variants.py``.

Put this folder on ``PYTHONPATH`` and every Python process started with it,
nbval's notebook kernels included, compiles every Keras model with
``jit_compile=True`` where it said ``"auto"`` (the default), and keeps an
explicit ``jit_compile=True``.  Keras itself does that only on a GPU and only
while op determinism is off (``model_supports_jit`` in
``keras/src/trainers/trainer.py``); a reader who turns determinism off on a GPU
gets exactly this.  An explicit ``compile(jit_compile=False)`` stays off.

Nothing heavy runs at interpreter start: a ``sys.meta_path`` finder waits for
``keras.src.trainers.trainer`` to be imported, then patches it.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

_TARGET = "keras.src.trainers.trainer"


def _patch(module) -> None:
    def supports_jit(model) -> bool:
        # Keras's own rule without its "op determinism is on" veto.
        return all(layer.supports_jit for layer in model._flatten_layers())

    module.model_supports_jit = supports_jit
    module.Trainer._resolve_auto_jit_compile = lambda self: supports_jit(self)


class _Loader(importlib.abc.Loader):
    def __init__(self, wrapped: importlib.abc.Loader) -> None:
        self._wrapped = wrapped

    def create_module(self, spec):
        return self._wrapped.create_module(spec)

    def exec_module(self, module) -> None:
        self._wrapped.exec_module(module)
        _patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != _TARGET:
            return None
        sys.meta_path.remove(self)  # find the real spec, then step aside for good
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


sys.meta_path.insert(0, _Finder())
