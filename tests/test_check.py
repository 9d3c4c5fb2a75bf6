"""Every exercise checker accepts a right answer and rejects a typical wrong one."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers import check, custom_fit


def right_mae_step(model, x, y, lr):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(model(x) - y))
    dw, db = tape.gradient(loss, [model.w, model.b])
    model.w.assign_sub(lr * dw)
    model.b.assign_sub(lr * db)


def wrong_mae_step(model, x, y, lr):  # forgot the learning rate
    right_mae_step(model, x, y, 1.0)


def epoch(weighted: bool):
    def run(model, optimizer, loss_fn, dataset):
        total, count, means = 0.0, 0, []
        for xb, yb in dataset:
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
            total += float(loss) * len(xb)
            count += len(xb)
            means.append(float(loss))
        return total / count if weighted else float(np.mean(means))

    return run


def stopper(strict: bool):
    def run(values, patience):
        best, best_epoch, wait = float("inf"), None, 0
        for epoch_, value in enumerate(values):
            if value < best or (not strict and value <= best):
                best, best_epoch, wait = value, epoch_, 0
            else:
                wait += 1
                if wait >= patience:
                    return epoch_, best_epoch
        return None, best_epoch

    return run


def make_epoch(include_last: bool):
    def make(step, batch_size):
        @tf.function
        def run(x, y):
            n = tf.shape(x)[0]
            steps = (n + batch_size - 1) // batch_size if include_last else n // batch_size
            for i in tf.range(steps):
                end = tf.minimum((i + 1) * batch_size, n)
                step(x[i * batch_size : end], y[i * batch_size : end])

        return run

    return make


def safe_mse(y_true, y_pred):  # written here, not with the book's diagnostics.assert_same_shape
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(f"shapes {y_true.shape} and {y_pred.shape} differ")
    return tf.reduce_mean(tf.square(y_true - y_pred))


def numpy_focal_loss(y, p):
    """The focal loss from its definition, in NumPy float64 (independent of the book's class)."""
    y, p = np.asarray(y, np.float64), np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    p_t = y * p + (1 - y) * (1 - p)
    alpha_t = y * 0.25 + (1 - y) * 0.75
    return np.mean(-alpha_t * (1 - p_t) ** 2 * np.log(p_t))


class HandWrittenTrainStep(keras.Model):
    """A train_step written out here, independently of the book's CustomFitModel."""

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred)
        self.optimizer.apply(tape.gradient(loss, self.trainable_variables), self.trainable_variables)
        self.update_metrics(loss, x, y, y_pred)
        return self.get_metrics_result()

    def update_metrics(self, loss, x, y, y_pred) -> None:
        for metric in self.metrics:
            if metric.name == "loss":  # a mean over samples: the partial last batch counts less
                metric.update_state(loss, sample_weight=tf.shape(x)[0])
            else:
                metric.update_state(y, y_pred)


class NoLossTracker(HandWrittenTrainStep):  # the classic mistake: loss tracker not updated
    def update_metrics(self, loss, x, y, y_pred) -> None:
        for metric in self.metrics:
            if metric.name != "loss":
                metric.update_state(y, y_pred)


def pipeline(cache_after_shuffle: bool):
    def make(x, y, batch_size, seed):
        dataset = tf.data.Dataset.from_tensor_slices((x, y))
        if cache_after_shuffle:  # the cache replays the first epoch's order
            return dataset.shuffle(len(x), seed=seed).cache().batch(batch_size)
        return dataset.cache().shuffle(len(x), seed=seed).batch(batch_size)

    return make


class WeightedRecall(keras.metrics.Metric):
    def __init__(self, weighted: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.weighted = weighted
        self.hits = self.add_variable((), initializer="zeros", name="hits")
        self.positives = self.add_variable((), initializer="zeros", name="positives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        w = tf.cast(sample_weight, tf.float32) if self.weighted else tf.ones_like(y_true)
        predicted = tf.cast(y_pred > 0.5, tf.float32)
        self.hits.assign_add(tf.reduce_sum(w * y_true * predicted))
        self.positives.assign_add(tf.reduce_sum(w * y_true))

    def result(self):
        return tf.math.divide_no_nan(self.hits, self.positives)


class UnweightedRecall(WeightedRecall):
    def __init__(self, **kwargs) -> None:
        super().__init__(weighted=False, **kwargs)


def per_class_recall(y_true, y_pred, num_classes):
    hits = np.array([np.sum((y_true == c) & (y_pred == c)) for c in range(num_classes)])
    actual = np.bincount(y_true, minlength=num_classes)
    return np.divide(hits, actual, out=np.zeros(num_classes), where=actual > 0)


def per_class_precision(y_true, y_pred, num_classes):  # the typical slip: divides by the predictions
    return per_class_recall(y_pred, y_true, num_classes)


def connected_mse(w, x, y):
    return tf.reduce_mean(tf.square(x @ w - y))


def numpy_round_trip_mse(w, x, y):  # the exercise's broken loss: the prediction leaves the tape
    prediction = tf.constant(np.round((x @ w).numpy(), 3))
    return tf.reduce_mean(tf.square(prediction - y))


@tf.custom_gradient
def straight_through(x):
    return tf.round(x), lambda upstream: upstream


def nested_tape_hvp(f, w, v):
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            value = f(w)
        product = tf.reduce_sum(inner.gradient(value, w) * v)
    return outer.gradient(product, w)


def gradient_not_hvp(f, w, v):
    with tf.GradientTape() as tape:
        value = f(w)
    return tape.gradient(value, w)


@tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
def tensor_array_means(xs):
    n = tf.shape(xs)[0]
    means = tf.TensorArray(tf.float32, size=n)
    total = tf.constant(0.0)
    for i in tf.range(n):
        total += xs[i]
        means = means.write(i, total / tf.cast(i + 1, tf.float32))
    return means.stack()


@tf.function
def python_loop_means(xs):  # right values, but unrolled: a new trace for every length
    means, total = [], 0.0
    for i in range(xs.shape[0]):
        total += xs[i]
        means.append(total / (i + 1))
    return tf.stack(means)


CASES = [
    (check.mae_step, right_mae_step, wrong_mae_step),
    (check.training_epoch, epoch(weighted=True), epoch(weighted=False)),
    (check.custom_train_step, HandWrittenTrainStep, NoLossTracker),
    (check.focal_loss, numpy_focal_loss,
     lambda y, p: tf.reduce_mean(-(y * tf.math.log(p) + (1 - y) * tf.math.log(1 - p)))),
    (check.global_clipping, lambda g, c: tf.clip_by_global_norm(g, c)[0],
     lambda g, c: [tf.clip_by_norm(t, c) for t in g]),
    (check.loss_with_penalties,
     lambda m, y, p: keras.losses.MeanSquaredError()(y, p) + tf.add_n(m.losses),
     lambda m, y, p: keras.losses.MeanSquaredError()(y, p)),
    (check.early_stopping, stopper(strict=True), stopper(strict=False)),
    (check.generator_loss,
     lambda z: keras.losses.BinaryCrossentropy(from_logits=True)(tf.ones_like(z), z),
     lambda z: keras.losses.BinaryCrossentropy(from_logits=True)(tf.zeros_like(z), z)),
    (check.epoch_batches, make_epoch(include_last=True), make_epoch(include_last=False)),
    (check.replica_loss, lambda per, gbs: tf.reduce_sum(per) / gbs, lambda per, gbs: tf.reduce_mean(per)),
    (check.shape_safe_loss, safe_mse, lambda y, p: tf.reduce_mean(tf.square(y - p))),
    (check.epoch_pipeline, pipeline(cache_after_shuffle=False), pipeline(cache_after_shuffle=True)),
    (check.recall_metric, WeightedRecall, UnweightedRecall),
    (check.per_class_recall, per_class_recall, per_class_precision),
    (check.connected_loss, connected_mse, numpy_round_trip_mse),
    (check.straight_through_round, straight_through, tf.round),
    (check.hessian_vector_product, nested_tape_hvp, gradient_not_hvp),
    (check.running_means, tensor_array_means, python_loop_means),
]


@pytest.mark.parametrize(("checker", "right", "wrong"), CASES, ids=[c[0].__name__ for c in CASES])
def test_checker_tells_right_from_wrong(checker, right, wrong, capsys) -> None:
    assert checker(right) is True
    assert capsys.readouterr().out.strip().endswith("correct")
    assert checker(wrong) is False
    assert "not yet" in capsys.readouterr().out


def test_a_crashing_answer_is_reported_not_raised(capsys) -> None:
    def broken(*args):
        raise RuntimeError("oops")

    assert check.focal_loss(broken) is False
    assert "raised RuntimeError: oops" in capsys.readouterr().out


def test_a_wrong_result_is_reported_as_yours(capsys) -> None:
    assert check.focal_loss(lambda y, p: "0.1") is False
    assert "your function returned str" in capsys.readouterr().out
    assert check.global_clipping(lambda g, c: tf.clip_by_global_norm(g, c)) is False  # (list, norm)
    assert "returned list where a tensor was expected" in capsys.readouterr().out
    assert check.global_clipping(lambda g, c: g[:1]) is False
    assert "expected a list of 2 tensors" in capsys.readouterr().out


def test_a_class_without_train_step_is_not_correct(capsys) -> None:
    class NoOverride(keras.Model):
        pass

    assert check.custom_train_step(NoOverride) is False
    assert "NoOverride does not override train_step" in capsys.readouterr().out
    assert check.custom_train_step(custom_fit.CustomFitModel) is True  # the book's own answer passes too
    capsys.readouterr()
    assert check.custom_train_step(lambda: None) is False  # a function, not a class
    assert "expected a subclass of keras.Model" in capsys.readouterr().out


def test_the_checkers_own_errors_are_not_blamed_on_the_reader(monkeypatch) -> None:
    def broken_reference(*args, **kwargs):
        raise ZeroDivisionError("inside the checker")

    monkeypatch.setattr(check.losses, "BinaryFocalLoss", broken_reference)
    with pytest.raises(RuntimeError, match="bug in the checker, not in your code"):
        check.focal_loss(numpy_focal_loss)
