"""Checkers for Chapter 3's exercises (GradientTape, custom gradients and tf.function; kept apart so
that ``check.py`` stays small)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from tutorial_helpers.check import _array, _number, _run, _yours


def connected_loss(your_fn: Callable) -> bool:
    """Chapter 3: ``your_fn(w, x, y)`` is the MSE of ``x @ w`` against ``y``, computed where the tape sees it.

    The loss must be a scalar tensor whose gradient with respect to the
    variable ``w`` is not ``None`` and equals ``2/n x^T (x w - y)``.
    """

    def body() -> str | None:
        rng = np.random.default_rng(3)
        x = rng.normal(size=(8, 3)).astype(np.float32)
        y = rng.normal(size=(8, 1)).astype(np.float32)
        w = tf.Variable(rng.normal(size=(3, 1)).astype(np.float32))
        with tf.GradientTape() as tape:
            loss = _yours(your_fn, w, tf.constant(x), tf.constant(y))
        value = _number(loss)
        gradient = tape.gradient(loss, w) if tf.is_tensor(loss) else None
        if gradient is None:
            return ("the gradient is None: something in your_fn left the tape "
                    "(NumPy, an integer cast, a Python float)")
        residual = x.astype(np.float64) @ w.numpy() - y
        expected = float(np.mean(residual**2))
        if not np.isclose(value, expected, rtol=1e-5):
            return f"the loss is {value:.6f}, expected the MSE {expected:.6f}"
        expected_gradient = 2 / len(x) * x.T @ residual
        got = _array(gradient, (3, 1), "the gradient of your loss")
        if not np.allclose(got, expected_gradient, rtol=1e-4, atol=1e-6):
            return (f"the gradient is {got.ravel().round(5).tolist()}, "
                    f"expected 2/n x^T (xw - y) = {expected_gradient.ravel().round(5).tolist()}")
        return None

    return _run("connected_loss", body)


def straight_through_round(your_fn: Callable) -> bool:
    """Chapter 3: ``your_fn(x)`` rounds like ``tf.round`` but lets the gradient straight through.

    Written with ``@tf.custom_gradient``: the forward pass is ``tf.round(x)``,
    the backward pass returns the upstream gradient unchanged, so the gradient
    of ``sum(3 * your_fn(x))`` is 3 everywhere.
    """

    def body() -> str | None:
        x = tf.constant([-2.5, -1.5, -0.7, -0.5, -0.2, 0.0, 0.4, 0.5, 1.5, 2.5, 3.7])
        expected = tf.round(x).numpy() + 0.0  # + 0.0 shows -0.0 as 0.0
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = _yours(your_fn, x)
            got = _array(out, tuple(x.shape))
            total = tf.reduce_sum(3.0 * tf.cast(out, tf.float32)) if tf.is_tensor(out) else None
        if not np.array_equal(got, expected):
            return f"the forward pass gave {got.tolist()}, expected tf.round(x) = {expected.tolist()}"
        gradient = tape.gradient(total, x) if total is not None else None
        if gradient is None:
            return ("the gradient of sum(3 * your_fn(x)) is None: tf.round alone has no gradient; "
                    "decorate your_fn with @tf.custom_gradient and return the upstream gradient unchanged")
        grad = _array(gradient, tuple(x.shape), "the gradient")
        if not np.any(grad):
            return ("the gradient of sum(3 * your_fn(x)) is all zeros, as rounding's true derivative; "
                    "a straight-through estimator returns the upstream gradient unchanged")
        if not np.allclose(grad, 3.0):
            return f"the gradient of sum(3 * your_fn(x)) is {grad.tolist()}, expected all 3s"
        return None

    return _run("straight_through_round", body)


def hessian_vector_product(your_fn: Callable) -> bool:
    """Chapter 3: ``your_fn(f, w, v)`` returns the Hessian-vector product ``H v`` of ``f`` at ``w``.

    ``f`` is a scalar function of the variable ``w``; nested GradientTapes
    give ``H v`` as the gradient of ``(grad f) . v`` without building ``H``.
    """

    def body() -> str | None:
        rng = np.random.default_rng(5)
        b = rng.normal(size=(4, 4))
        a = ((b + b.T) / 2).astype(np.float32)
        w0 = rng.normal(size=4).astype(np.float32)
        v = rng.normal(size=4).astype(np.float32)
        a_tensor = tf.constant(a)
        cases = [
            ("0.5 w^T A w", lambda w: 0.5 * tf.reduce_sum(w * tf.linalg.matvec(a_tensor, w)),
             a.astype(np.float64) @ v, a.astype(np.float64) @ w0),
            ("sum(w**4)", lambda w: tf.reduce_sum(w**4),
             12 * w0.astype(np.float64) ** 2 * v, 4 * w0.astype(np.float64) ** 3),
        ]
        for name, f, expected, gradient in cases:
            result = _yours(your_fn, f, tf.Variable(w0), tf.constant(v))
            if result is None:
                return f"for f(w) = {name} your_fn returned None (is the outer tape's target connected to w?)"
            got = _array(result, (4,))
            if not np.allclose(got, expected, rtol=1e-4, atol=1e-5):
                hint = (" (that is the gradient of f, not H v: differentiate (gradient . v) "
                        "with an outer tape)") if np.allclose(got, gradient, rtol=1e-4, atol=1e-5) else ""
                return (f"for f(w) = {name} got {got.round(4).tolist()}, "
                        f"expected H v = {expected.round(4).tolist()}{hint}")
        return None

    return _run("hessian_vector_product", body)


def running_means(your_fn: Callable) -> bool:
    """Chapter 3: ``your_fn(xs)`` is a ``tf.function`` giving the running means of a 1-D tensor.

    Element ``i`` is the mean of ``xs[:i+1]``, collected in a ``tf.TensorArray``
    in a loop over ``tf.range``; two calls with lengths 5 and 9 may trace at
    most once between them (give the function
    ``input_signature=[tf.TensorSpec([None], tf.float32)]``).
    """

    def body() -> str | None:
        if not hasattr(your_fn, "experimental_get_tracing_count"):
            return "your_fn is not a tf.function: decorate it with @tf.function"
        rng = np.random.default_rng(7)
        before = your_fn.experimental_get_tracing_count()
        for n in (5, 9):
            xs = rng.uniform(-2.0, 5.0, n).astype(np.float32)
            got = _array(_yours(your_fn, tf.constant(xs)), (n,))
            expected = np.cumsum(xs, dtype=np.float64) / np.arange(1, n + 1)
            if not np.allclose(got, expected, rtol=1e-5, atol=1e-6):
                return f"for length {n} got {got.round(4).tolist()}, expected {expected.round(4).tolist()}"
        traces = your_fn.experimental_get_tracing_count() - before
        if traces > 1:
            return (f"calls with lengths 5 and 9 traced your_fn {traces} times: a Python loop over the "
                    "tensor's length retraces for every new length; loop over tf.range and collect in a "
                    "tf.TensorArray; even then tf.function traces once per input shape unless given "
                    "input_signature=[tf.TensorSpec([None], tf.float32)]")
        return None

    return _run("running_means", body)
