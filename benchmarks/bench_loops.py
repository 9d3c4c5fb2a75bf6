"""The speed ladder of Chapter 9: time per epoch of every way to run the Chapter 2 MLP.

Run from the repository root:  python benchmarks/bench_loops.py [--epochs 10] [--repeats 3]

All rungs run in one process, on the same model, data (1,000 samples) and
batches of 32.  Each is timed as ``run(epochs + 1) - run(1)``: the difference
is the steady-state cost of ``epochs`` epochs, without the tracing and set-up
that every call to ``loops.train`` and ``model.fit`` pays once.  The rungs are
measured in turn within each repeat, so a busy machine slows all of them alike;
the table shows the median over repeats, in milliseconds per epoch and per
step, and as a ratio to ``model.fit`` with default settings.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

from tutorial_helpers import quiet_import_tensorflow
from tutorial_helpers.runtime import set_seed

tf = quiet_import_tensorflow()
import keras  # noqa: E402

from tutorial_helpers import data, loops, steps, timing  # noqa: E402

BATCH_SIZE = 32


def build_mlp() -> keras.Model:
    set_seed(0)
    return keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(10, activation="relu"), keras.layers.Dense(1)]
    )


def rungs(x, y) -> dict[str, Callable[[int], keras.Model]]:
    """Every rung as ``run(n_epochs)`` that trains a fresh model from the same seed."""
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH_SIZE)
    mse = keras.losses.MeanSquaredError()

    def eager(n: int) -> keras.Model:
        model, optimizer = build_mlp(), keras.optimizers.Adam(0.01)
        for _ in range(n):
            for xb, yb in dataset:
                with tf.GradientTape() as tape:
                    loss = mse(yb, model(xb, training=True))
                optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return model

    def helper(steps_per_execution: int | str) -> Callable[[int], keras.Model]:
        def run(n: int) -> keras.Model:
            model = build_mlp()
            loops.train(model, (x, y), batch_size=BATCH_SIZE, optimizer=keras.optimizers.Adam(0.01),
                        loss_fn=mse, epochs=n, verbose=0, steps_per_execution=steps_per_execution)
            return model

        return run

    def xla(n: int) -> keras.Model:
        model = build_mlp()
        body = steps.train_step_body(model, keras.optimizers.Adam(0.01), mse, keras.metrics.Mean())
        step = steps.compile_step(body, jit_compile=True)
        for _ in range(n):
            for xb, yb in dataset:
                step(xb, yb)
        return model

    def fit(steps_per_execution: int) -> Callable[[int], keras.Model]:
        def run(n: int) -> keras.Model:
            model = build_mlp()
            model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse",
                          steps_per_execution=steps_per_execution)
            model.fit(x, y, batch_size=BATCH_SIZE, epochs=n, shuffle=False, verbose=0)
            return model

        return run

    return {
        "1. eager loop": eager,
        "2. tf.function step": helper(1),
        "3. 8 steps per call": helper(8),
        "3. 32 steps per call": helper(32),
        "4. whole epoch per call": helper("epoch"),
        "5. tf.function step + XLA": xla,
        "model.fit": fit(1),
        "model.fit(steps_per_execution=32)": fit(32),
    }


def measure(
    epochs: int = 10, repeats: int = 3, eager_epochs: int = 2
) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per epoch of every rung, and the final training-set loss of each.

    Every rung but the eager one trains ``epochs + 1`` epochs in its timed run, so
    their final losses must agree (the eager loop runs fewer epochs: it is slow).
    """
    x, y = data.make_regression_data(n=1000, seed=0)
    runs = rungs(x, y)
    samples: dict[str, list[float]] = {name: [] for name in runs}
    models = {}
    for _ in range(repeats):  # the rungs in turn, so load on the machine affects all alike
        for name, run in runs.items():
            n = eager_epochs if name.startswith("1.") else epochs
            seconds_taken, models[name] = timing.seconds_per_epoch(run, n)
            samples[name].append(seconds_taken)
    seconds = {name: statistics.median(values) for name, values in samples.items()}
    mse = keras.losses.MeanSquaredError()
    return seconds, {name: float(mse(y, model(x))) for name, model in models.items()}


def table(results: dict[str, float], losses: dict[str, float] | None = None, steps: int = 32) -> str:
    """The ladder as text: ms per epoch and per step, speed relative to ``model.fit``, final loss."""
    fit_time = results["model.fit"]
    lines = [f"{'rung':36s} {'ms/epoch':>9s} {'ms/step':>8s} {'fit / rung':>11s} {'loss':>8s}"]
    for name, seconds in results.items():
        loss = f"{losses[name]:8.4f}" if losses else ""
        lines.append(f"{name:36s} {seconds * 1e3:9.2f} {seconds * 1e3 / steps:8.3f} "
                     f"{fit_time / seconds:10.1f}x {loss}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results, losses = measure(args.epochs, args.repeats)
    print(table(results, losses))
    fastest = min(results[k] for k in results if not k.startswith("model.fit"))
    print(f"\nfastest hand-written rung vs model.fit: {results['model.fit'] / fastest:.1f}x faster; "
          f"vs fit(steps_per_execution=32): "
          f"{results['model.fit(steps_per_execution=32)'] / fastest:.1f}x faster")


if __name__ == "__main__":
    main()
