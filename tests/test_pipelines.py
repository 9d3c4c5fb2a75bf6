"""Input pipelines: the same batches as arrays, reproducible reshuffling, and the wait measured."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tutorial_helpers import loops, models
from tutorial_helpers.compare import max_weight_difference
from tutorial_helpers.data import make_regression_data
from tutorial_helpers.pipelines import naive_pipeline, time_input, tuned_pipeline

X, Y = make_regression_data(96, seed=4)


def labels_per_epoch(dataset, epochs=3):
    return [np.concatenate([y.numpy()[:, 0] for _, y in dataset]).tolist() for _ in range(epochs)]


def test_pipelines_give_the_arrays_batches_and_train_the_same() -> None:
    expected = labels_per_epoch(tf.data.Dataset.from_tensor_slices((X, Y)).batch(32), 1)
    for dataset in (naive_pipeline(X, Y, 32, 0.0), tuned_pipeline(X, Y, 32, 0.0)):
        assert labels_per_epoch(dataset, 1) == expected
        assert dataset.element_spec[0].shape.as_list() == [None, 3]
    a, b = models.make_mlp(3, (8,), seed=1), models.make_mlp(3, (8,), seed=1)
    loops.train(a, (X, Y), batch_size=32, epochs=2, optimizer=keras.optimizers.Adam(0.01),
                loss_fn=keras.losses.MeanSquaredError(), verbose=0)
    loops.train(b, tuned_pipeline(X, Y, 32, 0.0), epochs=2, optimizer=keras.optimizers.Adam(0.01),
                loss_fn=keras.losses.MeanSquaredError(), verbose=0)
    assert max_weight_difference(a, b) == 0.0


def test_tuned_pipeline_reshuffles_each_epoch_reproducibly() -> None:
    first = labels_per_epoch(tuned_pipeline(X, Y, 32, 0.0, shuffle_seed=3))
    again = labels_per_epoch(tuned_pipeline(X, Y, 32, 0.0, shuffle_seed=3))
    other = labels_per_epoch(tuned_pipeline(X, Y, 32, 0.0, shuffle_seed=4))
    assert first == again != other
    assert first[0] != first[1] != first[2]
    assert all(sorted(order) == sorted(Y[:, 0].tolist()) for order in first)


def test_time_input_sees_the_wait_and_the_cache_removes_it() -> None:
    step = tf.function(lambda x, y: tf.reduce_sum(x) + tf.reduce_sum(y))
    naive = time_input(naive_pipeline(X, Y, 32, latency=2e-3), step, epochs=2)
    tuned_dataset = tuned_pipeline(X, Y, 32, latency=2e-3)
    time_input(tuned_dataset, step)  # fills the cache
    tuned = time_input(tuned_dataset, step, epochs=2)
    assert naive.steps == tuned.steps == 6
    assert naive.wait_s > 2 * 96 * 2e-3 * 0.9  # every sample's read was waited for
    assert naive.wait_fraction > 0.5
    assert tuned.wait_s < naive.wait_s / 4
