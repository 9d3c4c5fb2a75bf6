"""Force XLA in every Keras ``compile()``: the XLA variant of ``tests/run_variants.py``.

Put this folder on ``PYTHONPATH`` and every Python process started with it,
nbval's notebook kernels included, compiles every Keras model with
``jit_compile=True`` where it said ``"auto"`` (the default), and keeps an
explicit ``jit_compile=True``.  Keras itself does that only on a GPU and only
while op determinism is off (``model_supports_jit`` in
``keras/src/trainers/trainer.py``); a reader who turns determinism off on a GPU
gets exactly this.  An explicit ``compile(jit_compile=False)`` stays off.

Nothing heavy runs at interpreter start: ``tests/variant_import_hook.py`` waits for
``keras.src.trainers.trainer`` to be imported, then this patches it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/, last: it shadows nothing
from variant_import_hook import patch_after_import

_TARGET = "keras.src.trainers.trainer"


def _patch(module) -> None:
    def supports_jit(model) -> bool:
        # Keras's own rule without its "op determinism is on" veto.
        return all(layer.supports_jit for layer in model._flatten_layers())

    module.model_supports_jit = supports_jit
    module.Trainer._resolve_auto_jit_compile = lambda self: supports_jit(self)


patch_after_import(_TARGET, _patch)
