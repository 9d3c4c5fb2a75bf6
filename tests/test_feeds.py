"""Chapter 10: the feeds behind the helper loops, and the host reads they (do not) make."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers import data, feeds, loops, timing
from tutorial_helpers.compare import max_weight_difference
from tutorial_helpers.trainer import Trainer


def build_mlp(seed: int = 1) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(10, activation="relu"), keras.layers.Dense(1)]
    )


def arrays(n: int) -> tuple[np.ndarray, np.ndarray]:
    return data.make_regression_data(n=n, seed=0)


# ----------------------------------------------------------------- LossWatch
def test_loss_watch_remembers_the_first_bad_step_and_its_value() -> None:
    watch = feeds.LossWatch()
    record = tf.function(watch.record)
    for loss in (1.0, 2.0, np.inf, np.nan, 3.0):
        record(tf.constant(loss))
    with pytest.raises(FloatingPointError, match=r"loss became inf at epoch 7, step 3"):
        watch.check(7)
    watch.reset()
    for loss in (1.0, 0.5):
        record(tf.constant(loss))
    assert watch.check(1) == 2


# ------------------------------------------------------------------ ArrayFeed
def test_array_feed_cuts_the_batches_of_dataset_batch() -> None:
    x, y = arrays(25)
    feed = feeds.ArrayFeed((x, y), 8)
    expected = list(tf.data.Dataset.from_tensor_slices((x, y)).batch(8).as_numpy_iterator())
    assert feed.steps == len(expected) == 4
    for index, (xb, yb) in enumerate(expected):
        got_x, got_y = feed.batch(tf.constant(index))
        np.testing.assert_array_equal(got_x.numpy(), xb)
        np.testing.assert_array_equal(got_y.numpy(), yb)


def test_shuffled_array_feed_takes_the_rows_in_the_given_order() -> None:
    x, y = arrays(10)
    feed = feeds.ArrayFeed((x, y), 4, shuffled=True)
    order = np.random.default_rng(0).permutation(10)
    feed.set_order(order)
    got = np.concatenate([feed.batch(tf.constant(i))[0].numpy() for i in range(feed.steps)])
    np.testing.assert_array_equal(got, x[order])
    with pytest.raises(ValueError, match="permutation"):
        feed.set_order(np.zeros(10, dtype=int))
    with pytest.raises(ValueError, match="shuffled=False"):
        feeds.ArrayFeed((x, y), 4).set_order(order)


# ----------------------------------------------------------------- host reads
def test_count_host_reads_counts_every_way_of_reading() -> None:
    t, v = tf.constant([1.0, 2.0]), tf.Variable(3.0)
    with timing.count_host_reads() as reads:
        float(t[0]), t.numpy(), int(v), v.numpy(), np.asarray(t), np.array(t)
        np.asarray([1.0, 2.0])  # not a tensor: not counted
    assert reads["count"] == 6
    float(t[0]), np.array(t)
    assert reads["count"] == 6  # no longer counting after the block


def host_reads(run) -> int:
    run()  # first: what runs only once in a process (Keras's set-up) is not counted
    with timing.count_host_reads() as reads:
        run()
    return reads["count"]


def train(n: int, **options) -> None:
    x, y = arrays(n)
    train_data = options.pop("train_data", (x, y))
    batch_size = None if isinstance(train_data, tf.data.Dataset) else 8
    loops.train(build_mlp(), train_data, batch_size=batch_size, optimizer=keras.optimizers.SGD(0.01),
                loss_fn=keras.losses.MeanSquaredError(), epochs=2, **options)


@pytest.mark.parametrize("steps_per_execution", [1, 4, "epoch"])
def test_loops_train_reads_the_host_a_fixed_number_of_times_per_epoch(steps_per_execution) -> None:
    # 64 steps per epoch or 8: the same number of reads, so none of them is per step
    few = host_reads(lambda: train(64, verbose=0, steps_per_execution=steps_per_execution))
    many = host_reads(lambda: train(512, verbose=0, steps_per_execution=steps_per_execution))
    assert many == few <= 12


def test_loops_train_on_a_dataset_reads_no_more_for_more_steps() -> None:
    def on_dataset(n: int) -> None:
        x, y = arrays(n)
        train(n, verbose=0, train_data=tf.data.Dataset.from_tensor_slices((x, y)).batch(8),
              validation_data=tf.data.Dataset.from_tensor_slices((x, y)).batch(8))

    assert host_reads(lambda: on_dataset(512)) == host_reads(lambda: on_dataset(64))


def test_the_trainer_reads_the_host_a_fixed_number_of_times_per_epoch() -> None:
    def fit(n: int) -> None:
        x, y = arrays(n)
        Trainer(build_mlp(), optimizer=keras.optimizers.Adam(0.01),
                loss_fn=keras.losses.MeanSquaredError()).fit(
            (x, y), batch_size=8, epochs=2, shuffle_seed=0, validation_data=(x[:32], y[:32]))

    assert host_reads(lambda: fit(512)) == host_reads(lambda: fit(64))


def test_the_progress_bar_reads_no_more_often_than_fits() -> None:
    x, y = arrays(512)

    def fit() -> None:
        model = build_mlp()
        model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=1)

    ours = host_reads(lambda: train(512, verbose=1))
    keras_own = host_reads(fit)
    assert keras_own >= 2 * 64  # fit() reads its logs after every step (pythonify_logs)
    assert ours <= keras_own


# ---------------------------------------------- every path computes the same
def test_a_dataset_of_unknown_length_trains_like_one_of_known_length() -> None:
    x, y = arrays(100)
    known = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    unknown = known.filter(lambda a, b: True)
    assert int(unknown.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    models = []
    for dataset in (known, unknown):
        model = build_mlp()
        loops.train(model, dataset, optimizer=keras.optimizers.Adam(0.01),
                    loss_fn=keras.losses.MeanSquaredError(), epochs=2, verbose=0)
        models.append(model)
    assert max_weight_difference(*models) == 0.0
    results = [loops.evaluate(models[0], dataset, loss_fn=keras.losses.MeanSquaredError())
               for dataset in (known, unknown)]
    assert results[0] == results[1]


def test_arrays_and_their_dataset_train_to_the_same_bits_as_fit() -> None:
    x, y = arrays(790)  # a partial last batch
    reference = build_mlp()
    reference.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    reference.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    for train_data, batch_size in (((x, y), 32), (dataset, None)):
        model = build_mlp()
        loops.train(model, train_data, batch_size=batch_size, optimizer=keras.optimizers.Adam(0.01),
                    loss_fn=keras.losses.MeanSquaredError(), epochs=2, verbose=0)
        assert max_weight_difference(model, reference) == 0.0


def test_a_nan_in_the_last_batch_is_reported_with_its_step() -> None:
    x, y = arrays(100)
    y[-1] = np.nan  # the partial 7th batch of 16
    with pytest.raises(FloatingPointError, match=r"epoch 1, step 7"):
        train(100, verbose=0, train_data=tf.data.Dataset.from_tensor_slices((x, y)).batch(16))


# ------------------------------------------------------------ FLOPs and peak
def test_step_flops_of_a_dense_layer_is_the_closed_form() -> None:
    kernel = tf.Variable(tf.ones((784, 256)))

    def forward_and_backward(x):
        with tf.GradientTape() as tape:
            y = tf.matmul(x, kernel)
        return tape.gradient(y, kernel)  # x^T @ ones: one more matmul of the same size

    flops = timing.step_flops(forward_and_backward, tf.TensorSpec((32, 784)))
    assert flops == 2 * (2 * 32 * 784 * 256)
    with pytest.raises(ValueError, match="fully defined"):
        timing.step_flops(forward_and_backward, tf.TensorSpec((None, 784)))


def test_matmul_peak_is_a_plausible_rate() -> None:
    peak = timing.matmul_peak(size=256, repeats=3)
    assert 0.1 < peak < 1e6  # GFLOP/s: more than a tenth, less than a petaflop
