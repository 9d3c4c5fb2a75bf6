"""Imitate a GPU's TF32 arithmetic on the CPU: the ``tf32`` variant of ``tests/run_variants.py``.

On Ampere and newer NVIDIA GPUs TensorFlow runs float32 matrix multiplies and
convolutions in TF32 by default: each input is rounded to a 10-bit mantissa
(float32 has 23), the products are summed in float32.  Put this folder on
``PYTHONPATH`` and every Python process started with it, nbval's notebook
kernels included, does the same to ``tf.matmul``, ``tf.tensordot``,
``tf.nn.convolution``, ``tf.nn.conv2d`` and ``tf.nn.conv_transpose`` (the calls
Keras's Dense and Conv layers make), forward and backward:

* forward, both float32 inputs are rounded to TF32 (round to nearest even);
* backward, the incoming gradient is rounded to TF32 before TensorFlow's own
  gradient multiplies it by the other (already rounded) input, as the GPU's
  gradient matmuls would.

As on a GPU, nothing is rounded while ``tf.config.experimental.
enable_tensor_float_32_execution(False)`` is in force, nor for ops placed on a
CPU device (``with tf.device("/cpu:0")``, the replicas of a strategy built on
CPU devices), which a GPU machine would run on its CPU.  Ops placed nowhere in
particular count as on the GPU: the imitation is a worst case, since for tiny
shapes cuBLAS may still choose full-precision kernels.

Nothing heavy runs at interpreter start: ``tests/variant_import_hook.py`` waits for
``tensorflow`` to be imported, then this patches it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/, last: it shadows nothing
from variant_import_hook import patch_after_import, wrap_float32_products

_TARGET = "tensorflow"


def _patch(tf) -> None:
    from tensorflow.python.eager import context

    def to_tf32(x):
        bits = tf.bitcast(x, tf.int32)
        half = tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 13), 1) + 0xFFF
        return tf.bitcast(tf.bitwise.bitwise_and(bits + half, -8192), tf.float32)

    @tf.custom_gradient
    def round_input(x):  # rounded forward, the gradient passes through
        return to_tf32(x), lambda g: g

    @tf.custom_gradient
    def round_incoming_gradient(y):  # unchanged forward, the gradient rounded
        return tf.identity(y), lambda g: to_tf32(g)

    def active() -> bool:
        if not tf.config.experimental.tensor_float_32_execution_enabled():
            return False
        return "CPU" not in (context.context().device_name or "").upper()

    def rounded(fn, a, b, *args, **kwargs):
        return round_incoming_gradient(fn(round_input(a), round_input(b), *args, **kwargs))

    wrap_float32_products(tf, rounded, "tf32_imitation", active)


patch_after_import(_TARGET, _patch)
