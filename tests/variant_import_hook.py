"""Patch a module right after its first import: the mechanism shared by the variants' ``sitecustomize`` files.

A variant of ``tests/run_variants.py`` changes TensorFlow or Keras in every
Python process it starts, nbval's notebook kernels included, through a
``sitecustomize.py`` on ``PYTHONPATH`` (``tests/xla_variant``,
``tests/tf32_variant``).  Nothing heavy may run at interpreter start, so each
of them calls :func:`patch_after_import`: a ``sys.meta_path`` finder waits for
the module to be imported, lets it load, then hands it to the patch.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

# The TensorFlow functions Keras's Dense and Conv layers call (``tf.matmul`` is ``tf.linalg.matmul``).
PRODUCTS = {
    "": ("matmul", "tensordot"),
    "linalg": ("matmul", "tensordot"),
    "nn": ("convolution", "conv2d", "conv_transpose", "conv2d_transpose"),
}


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



def wrap_float32_products(
    tf: Any, compute: Callable[..., Any], marker: str, active: Callable[[], bool] = lambda: True
) -> None:
    """Make every function of :data:`PRODUCTS` call ``compute(fn, a, b, *args, **kwargs)`` instead of ``fn``.

    Only where both inputs are dense float32 tensors and ``active()`` is true;
    otherwise ``fn`` runs as it is.  Each wrapper carries ``marker`` as an
    attribute set to True, so that a probe can see the patch is in place.
    """

    def wrap(fn):
        @functools.wraps(fn)
        def wrapped(a, b, *args, **kwargs):
            if active() and not isinstance(a, tf.SparseTensor) and not isinstance(b, tf.SparseTensor):
                a, b = tf.convert_to_tensor(a), tf.convert_to_tensor(b)
                if a.dtype == tf.float32 and b.dtype == tf.float32:
                    return compute(fn, a, b, *args, **kwargs)
            return fn(a, b, *args, **kwargs)

        setattr(wrapped, marker, True)
        return wrapped

    wrapper_of = {}
    for module_name, names in PRODUCTS.items():
        module = getattr(tf, module_name) if module_name else tf
        for name in names:
            fn = getattr(module, name)
            if fn not in wrapper_of:  # tf.matmul is tf.linalg.matmul: wrap it once
                wrapper_of[fn] = wrap(fn)
            setattr(module, name, wrapper_of[fn])
