"""Chapter 15: saving a model after a custom loop, and loading it where the Python code is gone.

Three formats, three purposes:

* ``model.save("m.keras")``: architecture, weights, compile settings and the
  optimizer's state, for going on with training in Python.  Own layers and
  losses must be registered (``@keras.saving.register_keras_serializable``)
  and importable where the file is loaded;
* ``model.save_weights("m.weights.h5")``: the weights only, into a model your
  code builds again (Keras 3 refuses any other file name);
* ``model.export("dir")``: a TensorFlow SavedModel with a ``serve`` function,
  for serving: it loads with ``tf.saved_model.load`` and needs none of the
  Python classes.

:class:`Standardize` is a small own layer to save; :func:`predict_in_new_process`
loads an export in a fresh Python that has only TensorFlow, as a server would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tutorial_helpers.runtime import cpu_only_environment
from tutorial_helpers.validation import as_float_array


@keras.saving.register_keras_serializable(package="tutorial_helpers")
class Standardize(keras.layers.Layer):
    """Subtract a fixed ``mean`` and divide by a fixed ``std``, feature by feature.

    The statistics are constructor arguments, returned by :meth:`get_config`,
    so a saved model rebuilds the layer with them.  ``std`` must be positive.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        mean_array = as_float_array(mean, "mean", ndim=1)
        std_array = as_float_array(std, "std", ndim=1)
        if mean_array.shape != std_array.shape:
            raise ValueError(
                f"mean and std must have the same length, got {mean_array.shape} and {std_array.shape}"
            )
        if np.any(std_array <= 0):
            raise ValueError("std must be positive in every feature")
        self.mean = [float(v) for v in mean_array]
        self.std = [float(v) for v in std_array]

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        return (inputs - tf.constant(self.mean, inputs.dtype)) / tf.constant(self.std, inputs.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "mean": self.mean, "std": self.std}


_PREDICT = """
import sys
import numpy as np
import tensorflow as tf

served = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
np.save(sys.argv[3], served.serve(tf.constant(x)).numpy())
"""


def predict_in_new_process(export_dir: str | os.PathLike, x: Any, timeout: float = 120.0) -> np.ndarray:
    """Load the SavedModel in ``export_dir`` in a new Python process and return ``serve(x)``.

    The new process imports TensorFlow and NumPy only, never this package or
    Keras, so the result shows that the export works without the model's
    Python classes.  Raises ``RuntimeError`` with the process's error output
    if the load or the call fails.
    """
    export_dir = Path(export_dir)
    if not (export_dir / "saved_model.pb").is_file():
        raise FileNotFoundError(f"export_dir holds no SavedModel (saved_model.pb): {export_dir}")
    x = as_float_array(x, "x")
    with tempfile.TemporaryDirectory() as work:
        inputs, outputs = Path(work) / "x.npy", Path(work) / "y.npy"
        np.save(inputs, x)
        done = subprocess.run(
            [sys.executable, "-c", _PREDICT, str(export_dir), str(inputs), str(outputs)],
            env={**cpu_only_environment(), "TF_CPP_MIN_LOG_LEVEL": "3"},
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"loading the export failed:\n{done.stderr[-2000:]}")
        return np.load(outputs)
