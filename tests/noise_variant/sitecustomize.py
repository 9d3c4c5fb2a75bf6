"""Imitate an unknown CPU's summation order: the ``noise<seed>`` variants of ``tests/run_variants.py``.

A matmul's last bits depend on the order in which its products are summed, and
that order moves with the CPU in ways no environment variable sets: oneDNN and
Eigen size their blocks from the cache sizes they read from the CPU and pick
kernels per microarchitecture.  Any other order changes a float32 result by
about one unit in the last place (ulp).  This imitates *some* other order.

Put this folder on ``PYTHONPATH`` with ``BOOK_NOISE_SEED`` set to an integer,
and every Python process started with it, nbval's notebook kernels included,
flips the least significant mantissa bit of a pseudo-random half of the
elements of every float32 result of ``tf.matmul``, ``tf.tensordot``,
``tf.nn.convolution``, ``tf.nn.conv2d`` and ``tf.nn.conv_transpose`` (the
calls Keras's Dense and Conv layers make), forward and backward: the result,
and the gradients with respect to both inputs, each with its own pattern.

* The pattern is a hash of each element's own bits and the seed, so it changes
  from step to step as the values do, is the same in eager and graph mode, and
  two identical computations (a hand-written loop and ``fit()``) still agree
  bit for bit, as they do on any one CPU.
* A tape inside a tape still sees every path: the perturbed gradients are
  differentiable (as the identity), so a gradient of a gradient (a
  Hessian-vector product, WGAN-GP's penalty) is the true one, perturbed.
* Zeros, infinities and NaNs are left as they are: every summation order gives
  an exact zero for a sum of zeros, and a flipped bit would turn ``inf`` into
  ``nan``.
* The hash uses only shifts, ``xor``, ``and`` and casts, which TensorFlow's
  profiler counts as no floating-point operations, so FLOP counts read from a
  traced graph are the same as without the imitation.

Every device is perturbed, CPU devices included: this is a CPU's difference.
Nothing heavy runs at interpreter start: ``tests/variant_import_hook.py`` waits
for ``tensorflow`` to be imported, then this patches it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # tests/, last: it shadows nothing
from variant_import_hook import patch_after_import, wrap_float32_products

_TARGET = "tensorflow"


def _seed() -> int:
    text = os.environ.get("BOOK_NOISE_SEED", "")
    try:
        return int(text)
    except ValueError:
        raise SystemExit(f"tests/noise_variant: BOOK_NOISE_SEED must be an integer, got {text!r}") from None


def _keys(seed: int) -> tuple[int, int, int]:
    """Three 32-bit keys from the seed (forward, gradient of a, gradient of b), as signed int32."""
    keys = []
    for part in range(3):
        h = (seed * 0x9E3779B1 + part * 0x85EBCA77 + 0x165667B1) & 0xFFFFFFFF
        h ^= h >> 15
        h = (h * 0x2C1B3C6D) & 0xFFFFFFFF
        h ^= h >> 12
        keys.append(h - (1 << 32) if h >= 1 << 31 else h)
    return keys[0], keys[1], keys[2]


def _patch(tf) -> None:
    forward_key, grad_a_key, grad_b_key = _keys(_seed())
    bw = tf.bitwise

    def flip_last_bit(x, key: int):
        """x with the last mantissa bit flipped where a hash of (its bits, key) says so."""
        bits = tf.bitcast(x, tf.int32)
        h = bw.bitwise_xor(bits, key)
        for left, right in ((13, 17), (5, 11), (7, 19)):
            # xorshift mixes the bits; the ``and`` of two shifted copies makes the hash
            # non-linear, so that another key gives another pattern, not its complement
            h = bw.bitwise_xor(h, bw.left_shift(h, left))
            h = bw.bitwise_xor(h, bw.right_shift(h, right))
            h = bw.bitwise_xor(h, bw.bitwise_and(bw.left_shift(h, 3), bw.right_shift(h, 9)))
            h = bw.bitwise_xor(h, key)
        flip = bw.bitwise_and(bw.right_shift(h, 23), 1)
        magnitude = bw.bitwise_and(bits, 0x7FFFFFFF)
        exponent = bw.bitwise_and(bw.right_shift(bits, 23), 0xFF)
        nonzero = tf.cast(tf.cast(magnitude, tf.bool), tf.int32)
        finite = tf.cast(tf.cast(bw.bitwise_xor(exponent, 0xFF), tf.bool), tf.int32)
        flip = bw.bitwise_and(flip, bw.bitwise_and(nonzero, finite))
        return tf.bitcast(bw.bitwise_xor(bits, flip), tf.float32)

    # XLA fuses the two dozen integer operations into one kernel per shape: the same
    # bits (integer arithmetic is exact), in well under half the time of one op each
    flip_last_bit = tf.function(flip_last_bit, jit_compile=True)

    def flipper(key: int):
        @tf.custom_gradient
        def flip(x):  # the bits of a flipped value carry no gradient: pass it through
            return flip_last_bit(x, key), lambda g: g

        return flip

    def noisy_gradient(key: int):
        flip = flipper(key)

        @tf.custom_gradient
        def identity(x):  # unchanged forward, the gradient perturbed
            # ``flip`` is differentiable (as the identity), so a gradient of this
            # gradient, a tape inside a tape (WGAN-GP's penalty), still flows
            return tf.identity(x), lambda g: flip(g)

        return identity

    @tf.custom_gradient
    def noisy_result(y):  # perturbed forward, the gradient passes through
        return flip_last_bit(y, forward_key), lambda g: g

    noisy_a, noisy_b = noisy_gradient(grad_a_key), noisy_gradient(grad_b_key)

    def perturbed(fn, a, b, *args, **kwargs):
        return noisy_result(fn(noisy_a(a), noisy_b(b), *args, **kwargs))

    wrap_float32_products(tf, perturbed, "noise_imitation")


if os.environ.get("BOOK_NOISE_SEED") is not None:
    _seed()  # a bad seed fails at start-up, not at TensorFlow's import
    patch_after_import(_TARGET, _patch)
