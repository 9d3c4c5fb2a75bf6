"""Checkers for the exercises: does *your* implementation do what the chapter's does?

Each function takes your code, runs it against a reference on data it makes,
prints a one-line verdict (with what went wrong, if anything) and returns
``True`` or ``False``::

    from tutorial_helpers import check
    check.focal_loss(my_focal_loss)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tutorial_helpers import data, linear, loops, losses, models
from tutorial_helpers.compare import max_weight_difference


def _verdict(name: str, problem: str | None) -> bool:
    print(f"{name}: correct" if problem is None else f"{name}: not yet - {problem}")
    return problem is None


class _YourCodeRaised(Exception):
    """The reader's function raised: report it as theirs."""


class _WrongResult(Exception):
    """The reader's function returned something of the wrong kind."""


def _yours(function: Callable, *args: Any) -> Any:
    """Call the reader's ``function``; whatever it raises is reported as raised by *their* code."""
    if not callable(function):
        raise _WrongResult(f"expected a function, got {type(function).__name__}")
    try:
        return function(*args)
    except Exception as error:  # the reader's code may fail in any way
        raise _YourCodeRaised(f"your code raised {type(error).__name__}: {error}") from error


def _number(value: Any, what: str = "your function") -> float:
    """``value`` as a float, or a verdict saying what came back instead."""
    try:
        array = np.asarray(value)
        if not (np.issubdtype(array.dtype, np.number) and array.size == 1):
            raise TypeError(array.dtype)
        number = float(array.reshape(()))
    except (TypeError, ValueError) as error:
        raise _WrongResult(f"{what} returned {type(value).__name__} {value!r:.80}, not one number") from error
    return number


def _array(value: Any, shape: tuple[int, ...], what: str = "your function") -> np.ndarray:
    """``value`` as a numeric array of ``shape``, or a verdict saying what came back instead."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise _WrongResult(f"{what} returned {type(value).__name__} where a tensor was expected") from error
    if array.shape != shape:
        raise _WrongResult(f"{what} returned an array of shape {array.shape}, expected {shape}")
    return array


def _run(name: str, body: Callable[[], str | None]) -> bool:
    """Run a check and print its verdict.

    What the reader's code raises, or a result of the wrong kind, is the
    verdict; an error anywhere else is a bug in the checker and is raised,
    saying so, instead of being blamed on the reader.
    """
    try:
        problem = body()
    except (_YourCodeRaised, _WrongResult) as verdict:
        problem = str(verdict)
    except Exception as error:
        raise RuntimeError(
            f"check.{name} itself failed ({type(error).__name__}: {error}); "
            "this is a bug in the checker, not in your code"
        ) from error
    return _verdict(name, problem)


def mae_step(your_step: Callable) -> bool:
    """Chapter 1: ``your_step(model, x, y, learning_rate)`` makes one gradient step on the MAE.

    ``model`` is a ``linear.LinearModule``; the step must update ``model.w`` and
    ``model.b`` in place by ``-learning_rate`` times the (sub)gradient of
    ``mean(|w x + b - y|)``.
    """

    def body() -> str | None:
        x, y = data.make_line_data(n=50, seed=3)
        model = linear.LinearModule(w=5.0, b=0.0)
        _yours(your_step, model, tf.constant(x), tf.constant(y), 0.1)
        sign = np.sign(5.0 * x - y)
        expected = (5.0 - 0.1 * np.mean(sign * x), 0.0 - 0.1 * np.mean(sign))
        got = (float(model.w.numpy()), float(model.b.numpy()))
        if not np.allclose(got, expected, atol=1e-5):
            return f"after one step (W, b) = {np.round(got, 5)}, expected {np.round(expected, 5)}"
        return None

    return _run("mae_step", body)


def training_epoch(your_epoch: Callable) -> bool:
    """Chapter 2: ``your_epoch(model, optimizer, loss_fn, dataset)`` trains one epoch, returns its loss.

    The returned loss must be the epoch's mean over *samples* (as ``fit`` reports
    it), and the weights must equal one epoch of ``loops.train``.
    """

    def body() -> str | None:
        x, y = data.make_regression_data(n=200, seed=1)
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(48)  # a partial last batch
        yours, reference = models.make_mlp(3, (8,), seed=0), models.make_mlp(3, (8,), seed=0)
        loss = _number(_yours(your_epoch, yours, keras.optimizers.SGD(0.05),
                              keras.losses.MeanSquaredError(), dataset), "your epoch")
        history = loops.train(reference, dataset, optimizer=keras.optimizers.SGD(0.05),
                              loss_fn=keras.losses.MeanSquaredError(), epochs=1, verbose=0)
        if max_weight_difference(yours, reference) > 1e-5:
            return "the weights after one epoch differ from the reference loop's"
        if not np.isclose(loss, history["loss"][0], rtol=1e-4):
            return (f"returned loss {loss:.5f}, expected {history['loss'][0]:.5f} "
                    "(weight each batch by its size)")
        return None

    return _run("training_epoch", body)


def custom_train_step(your_model_class: type) -> bool:
    """Chapters 4 and the appendix: a ``keras.Model`` subclass whose ``train_step`` trains like ``fit``'s.

    The class is built functionally (``YourModel(inputs, outputs)``), compiled with
    a loss and an ``"mae"`` metric, and must end with the same weights and history.
    """

    def build(cls):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((3,))
        return cls(inputs, keras.layers.Dense(1)(keras.layers.Dense(8, activation="relu")(inputs)))

    def body() -> str | None:
        if not isinstance(your_model_class, type) or not issubclass(your_model_class, keras.Model):
            return f"expected a subclass of keras.Model, got {your_model_class!r}"
        if your_model_class.train_step is keras.Model.train_step:
            return f"{your_model_class.__name__} does not override train_step: fit() would run Keras's own"
        x, y = data.make_regression_data(n=200, seed=2)
        runs = []
        for cls in (your_model_class, keras.Model):
            def run(cls=cls):
                model = build(cls)
                model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
                return model, model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)

            runs.append(_yours(run) if cls is your_model_class else run())
        (yours, your_history), (plain, plain_history) = runs
        if max_weight_difference(yours, plain) > 1e-5:
            return "the weights differ from a plain compiled model's"
        for key in ("loss", "mae"):
            got = your_history.history.get(key)
            if got is None or not np.allclose(got, plain_history.history[key], rtol=1e-4):
                return f"history[{key!r}] is {got}, expected {plain_history.history[key]}"
        return None

    return _run("custom_train_step", body)


def focal_loss(your_fn: Callable) -> bool:
    """Chapter 5: ``your_fn(y_true, p)`` is the binary focal loss (alpha 0.25, gamma 2) on probabilities."""

    def body() -> str | None:
        rng = np.random.default_rng(0)
        y = (rng.random((64, 1)) < 0.3).astype(np.float32)
        p = rng.random((64, 1)).astype(np.float32)
        expected = float(losses.BinaryFocalLoss(0.25, 2.0)(y, p))
        got = _number(_yours(your_fn, tf.constant(y), tf.constant(p)))
        if not np.isclose(got, expected, rtol=1e-4):
            return f"got {got:.6f}, expected {expected:.6f}"
        edges = _number(_yours(your_fn, tf.constant([[0.0], [1.0]]), tf.constant([[1.0], [0.0]])))
        if not np.isfinite(edges):
            return "not finite for predictions of exactly 0 and 1 (clip the probabilities)"
        return None

    return _run("focal_loss", body)


def global_clipping(your_fn: Callable) -> bool:
    """Chapter 6: ``your_fn(gradients, clip_norm)`` clips a list of tensors by their global norm."""

    def body() -> str | None:
        grads = [tf.constant([[3.0, 4.0]]), tf.constant([12.0])]
        for limit in (6.0, 20.0):  # above and below the global norm of 13
            expected, _ = tf.clip_by_global_norm(grads, limit)
            got = _yours(your_fn, grads, limit)
            if not isinstance(got, (list, tuple)) or len(got) != len(expected):
                raise _WrongResult(f"expected a list of {len(expected)} tensors, got {type(got).__name__}")
            for g, e in zip(got, expected, strict=True):
                if not np.allclose(_array(g, tuple(e.shape)), e.numpy(), rtol=1e-5):
                    return f"with clip_norm={limit}: got {[np.asarray(t).tolist() for t in got]}"
        return None

    return _run("global_clipping", body)


def loss_with_penalties(your_fn: Callable) -> bool:
    """Chapter 7: ``your_fn(model, y_true, y_pred)`` returns the MSE plus the model's penalties."""

    def body() -> str | None:
        x, y = data.make_regression_data(n=32, seed=0)
        model = models.make_mlp(3, (8,), kernel_regularizer=keras.regularizers.L2(0.1), seed=0)
        y_pred = model(x)
        expected = float(keras.losses.MeanSquaredError()(y, y_pred)) + float(sum(model.losses))
        got = _number(_yours(your_fn, model, tf.constant(y), y_pred))
        if not np.isclose(got, expected, rtol=1e-5):
            return f"got {got:.5f}, expected {expected:.5f} (did you add sum(model.losses)?)"
        return None

    return _run("loss_with_penalties", body)


def early_stopping(your_fn: Callable) -> bool:
    """Chapter 8: ``your_fn(values, patience)`` returns ``(stop_epoch or None, best_epoch)``, 0-based."""
    cases = [
        (([5, 4, 3, 3.5, 3.2, 3.1, 2.0], 3), (5, 2)),
        (([5, 4, 3, 2, 1], 2), (None, 4)),
        (([1.0, 1.0, 1.0], 1), (1, 0)),  # equal is not better
    ]

    def body() -> str | None:
        for (values, patience), expected in cases:
            result = _yours(your_fn, list(values), patience)
            if not isinstance(result, (list, tuple)) or len(result) != 2:
                raise _WrongResult(f"expected a pair (stop_epoch or None, best_epoch), got {result!r}")
            got = tuple(result)
            if got != expected:
                return f"for {values} with patience {patience}: got {got}, expected {expected}"
        return None

    return _run("early_stopping", body)


def generator_loss(your_fn: Callable) -> bool:
    """Chapter 9: ``your_fn(fake_logits)`` is the generator's loss: fakes labelled real, on logits."""

    def body() -> str | None:
        logits = tf.constant(np.random.default_rng(0).normal(0, 3, (16, 1)).astype(np.float32))
        bce = keras.losses.BinaryCrossentropy(from_logits=True)
        expected = float(bce(tf.ones_like(logits), logits))
        got = _number(_yours(your_fn, logits))
        if not np.isclose(got, expected, rtol=1e-5):
            return f"got {got:.5f}, expected {expected:.5f}"
        return None

    return _run("generator_loss", body)


def epoch_batches(your_make_epoch: Callable) -> bool:
    """Chapter 10: ``your_make_epoch(step, batch_size)`` returns ``epoch(x, y)`` calling ``step`` per batch.

    The batches must be exactly those of ``Dataset.batch(batch_size)``,
    including the smaller last one.
    """

    def body() -> str | None:
        x = tf.reshape(tf.range(50, dtype=tf.float32), (25, 2))
        y = tf.reshape(tf.range(25, dtype=tf.float32), (25, 1))
        seen = tf.Variable(tf.zeros((8, 2)))  # per batch: (size, sum of y)
        count = tf.Variable(0)

        def step(xb, yb):
            seen.scatter_nd_update([[count]], [tf.stack([tf.cast(tf.shape(xb)[0], tf.float32),
                                                         tf.reduce_sum(yb)])])
            count.assign_add(1)
            return tf.reduce_sum(xb)

        epoch = _yours(your_make_epoch, step, 8)
        _yours(epoch, x, y)
        expected = [(float(len(yb)), float(np.sum(yb))) for _, yb in
                    tf.data.Dataset.from_tensor_slices((x, y)).batch(8).as_numpy_iterator()]
        got = [tuple(row) for row in seen.numpy()[: int(count.numpy())]]
        if got != expected:
            return f"batches (size, sum of y) were {got}, expected {expected}"
        return None

    return _run("epoch_batches", body)


def replica_loss(your_fn: Callable) -> bool:
    """Chapter 11: ``your_fn(per_example_losses, global_batch_size)`` is one replica's share of the loss."""

    def body() -> str | None:
        per_example = tf.constant([1.0, 2.0, 3.0, 6.0])
        got = _number(_yours(your_fn, per_example, 8))
        expected = float(tf.nn.compute_average_loss(per_example, global_batch_size=8))
        if not np.isclose(got, expected):
            return f"got {got}, expected {expected} (divide by the global batch size)"
        return None

    return _run("replica_loss", body)


def shape_safe_loss(your_fn: Callable) -> bool:
    """Chapter 12: ``your_fn(y_true, y_pred)`` is the MSE, and raises ``ValueError`` on mismatched shapes."""

    def body() -> str | None:
        y = tf.constant([[1.0], [2.0], [4.0]])
        p = tf.constant([[1.5], [2.0], [3.0]])
        got = _number(_yours(your_fn, y, p))
        if not np.isclose(got, float(np.mean((y.numpy() - p.numpy()) ** 2))):
            return f"the loss on matching shapes is {got}, not the MSE"
        try:
            your_fn(tf.reshape(y, (3,)), p)
        except ValueError:
            return None
        except Exception as error:  # the reader's code, failing the wrong way
            return f"(3,) targets against (3, 1) predictions raised {type(error).__name__}, not ValueError"
        return "(3,) targets against (3, 1) predictions did not raise ValueError"

    return _run("shape_safe_loss", body)


def epoch_pipeline(your_make_pipeline: Callable) -> bool:
    """Chapter 13: ``your_make_pipeline(x, y, batch_size, seed)`` gives shuffled batches of ``(x, y)``.

    Every sample once per epoch, in batches of ``batch_size`` (the last may
    be smaller), a new order each epoch, and the same orders when the
    pipeline is rebuilt with the same seed.
    """

    def epochs(dataset: Any) -> list[list[float]]:
        if not isinstance(dataset, tf.data.Dataset):
            raise _WrongResult(f"your function returned {type(dataset).__name__}, not a tf.data.Dataset")
        orders = []
        for _ in range(3):
            order: list[float] = []
            for batch in dataset:
                if len(batch) != 2 or len(batch[0]) > 8:
                    raise _WrongResult("each batch must be (x, y) with at most batch_size samples")
                order.extend(np.asarray(batch[1]).reshape(-1).tolist())
            orders.append(order)
        return orders

    def body() -> str | None:
        x = np.arange(60, dtype=np.float32).reshape(30, 2)
        y = np.arange(30, dtype=np.float32).reshape(30, 1)
        first = epochs(_yours(your_make_pipeline, x, y, 8, 5))
        again = epochs(_yours(your_make_pipeline, x, y, 8, 5))
        if any(sorted(order) != list(range(30)) for order in first):
            return "an epoch did not contain every sample exactly once"
        if first[0] == first[1] or first[1] == first[2]:
            return "two epochs had the same order: reshuffle each epoch (and cache before the shuffle)"
        if first != again:
            return "the rebuilt pipeline gave other orders: give shuffle the seed"
        if first[0][:8] == list(range(8)):
            return "the first batch is not shuffled"
        return None

    return _run("epoch_pipeline", body)


def recall_metric(your_metric_class: type) -> bool:
    """Chapter 4: ``your_metric_class()`` is a ``keras.metrics.Metric`` computing weighted binary recall.

    Checked against scikit-learn's ``recall_score`` over several batches with
    sample weights, and after ``reset_state``.
    """
    from sklearn.metrics import recall_score

    def body() -> str | None:
        metric = _yours(your_metric_class)
        if not isinstance(metric, keras.metrics.Metric):
            raise _WrongResult(f"your class made a {type(metric).__name__}, not a keras.metrics.Metric")
        rng = np.random.default_rng(4)
        labels = rng.integers(0, 2, 90).astype(np.float32)
        probabilities = rng.random(90).astype(np.float32)
        weights = rng.uniform(0.5, 2.0, 90).astype(np.float32)
        for start in range(0, 90, 32):
            part = slice(start, start + 32)
            _yours(metric.update_state, labels[part], probabilities[part], weights[part])
        expected = recall_score(labels, probabilities > 0.5, sample_weight=weights)
        got = _number(_yours(metric.result), "result()")
        if not np.isclose(got, expected, atol=1e-5):
            unweighted = recall_score(labels, probabilities > 0.5)
            hint = " (the unweighted recall: use sample_weight)" if np.isclose(got, unweighted) else ""
            return f"result() was {got:.4f} over three batches, expected {expected:.4f}{hint}"
        _yours(metric.reset_state)
        _yours(metric.update_state, labels[:10], probabilities[:10], weights[:10])
        expected = recall_score(labels[:10], probabilities[:10] > 0.5, sample_weight=weights[:10])
        got = _number(_yours(metric.result), "result()")
        if not np.isclose(got, expected, atol=1e-5):
            return f"after reset_state() and one batch, result() was {got:.4f}, expected {expected:.4f}"
        return None

    return _run("recall_metric", body)


# Chapters 3 and 16-18 keep their checkers in their own modules; imported last, as they use the helpers above.
from tutorial_helpers.check_classifier import per_class_recall  # noqa: E402, F401
from tutorial_helpers.check_finetune import ema_update, frozen_batchnorm  # noqa: E402, F401
from tutorial_helpers.check_sequences import (  # noqa: E402, F401
    bucketed,
    masked_accuracy,
    traces_once,
)
from tutorial_helpers.check_tape import (  # noqa: E402, F401
    connected_loss,
    hessian_vector_product,
    running_means,
    straight_through_round,
)
