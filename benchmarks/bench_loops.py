"""Time one epoch of the Chapter 2 MLP: eager loop, the helper's compiled loop, and model.fit.

Run from the repository root:  python benchmarks/bench_loops.py [--epochs 5] [--repeats 3]

All runs happen in one process, on the same model, data and batches.  Each loop
is timed as ``run(epochs + 1) - run(1)``: the difference is the steady-state
cost of ``epochs`` epochs, without tracing and set-up, which every call to
``loops.train`` and ``model.fit`` pays once.  Prints milliseconds per epoch (the
median over repeats) and each as a ratio to ``model.fit``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from tutorial_helpers import quiet_import_tensorflow
from tutorial_helpers.runtime import set_seed

tf = quiet_import_tensorflow()
import keras  # noqa: E402

from tutorial_helpers import data, loops  # noqa: E402

BATCH_SIZE = 32


def build_mlp() -> keras.Model:
    set_seed(0)
    return keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(10, activation="relu"), keras.layers.Dense(1)]
    )


def eager_loop(model, optimizer, loss_fn, dataset, epochs: int) -> None:
    for _, (x, y) in ((e, batch) for e in range(epochs) for batch in dataset):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)


def time_epochs(run: Callable[[int], None], epochs: int, repeats: int) -> float:
    """Median seconds per epoch of ``run(n_epochs)``, set-up cost subtracted."""

    def timed(n: int) -> float:
        start = time.perf_counter()
        run(n)
        return time.perf_counter() - start

    samples = []
    for _ in range(repeats):
        samples.append((timed(epochs + 1) - timed(1)) / epochs)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    x, y = data.make_regression_data(n=1000, seed=0)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH_SIZE)
    loss_fn = keras.losses.MeanSquaredError()
    results: dict[str, float] = {}

    model, optimizer = build_mlp(), keras.optimizers.Adam(0.01)
    results["eager loop"] = time_epochs(
        lambda n: eager_loop(model, optimizer, loss_fn, dataset, n), max(1, args.epochs // 5), args.repeats
    )

    model, optimizer = build_mlp(), keras.optimizers.Adam(0.01)
    results["helper loop (loops.train)"] = time_epochs(
        lambda n: loops.train(model, dataset, optimizer=optimizer, loss_fn=loss_fn, epochs=n, verbose=0),
        args.epochs,
        args.repeats,
    )

    model = build_mlp()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    results["model.fit"] = time_epochs(
        lambda n: model.fit(x, y, batch_size=BATCH_SIZE, epochs=n, shuffle=False, verbose=0),
        args.epochs,
        args.repeats,
    )

    fit_time = results["model.fit"]
    print(f"{'loop':28s} {'ms/epoch':>9s} {'ratio to fit':>13s}")
    for name, seconds in results.items():
        print(f"{name:28s} {seconds * 1e3:9.1f} {seconds / fit_time:13.2f}")


if __name__ == "__main__":
    main()
