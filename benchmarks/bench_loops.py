"""The speed ladder of Chapter 10 at the sizes readers train, next to this machine's matmul peak.

Run from the repository root:

    python benchmarks/bench_loops.py                 # every workload, about 3 minutes on 2 cores
    python benchmarks/bench_loops.py --workloads toy --repeats 5

Workloads (batches of 32, Adam, no shuffling, so every rung sees the same batches):

* ``toy``  - the 3-10-1 MLP of Chapters 2 and 10 on 1,000 samples (regression);
* ``mid``  - a 20-64-1 MLP on 20,000 samples (regression);
* ``big``  - a 784-256-256-10 MLP on 20,000 samples (10-class softmax), the
  size of an MNIST classifier;
* ``gan``  - the Chapter 9 GAN step (two networks, two optimizers) on the
  1,797 digit images, batches of 64.

Rungs: ``model.fit`` with one step per call and with ``steps_per_execution=32``,
and the book's loops: ``loops.train`` with one step per call, 32 steps per call
and a whole epoch per call, and ``Trainer.fit`` (the GAN has its own rungs: its
``fit`` and its ``train_step`` run by the book's feed, one step and a whole
epoch per call).  Each run trains a fresh model for ``epochs + 1`` epochs
through the real API and stamps the time at the end of every epoch (a
callback for ``fit()``, the helpers' once-per-epoch ``LossWatch.check``); a
rung's time per epoch is the median over the epochs after the first, which
pays for tracing.  The rungs are measured in turn within each repeat, so a
busy machine slows all of them alike, and the table shows the median over
repeats.

Achieved GFLOP/s counts the floating-point operations of one traced training
step with TensorFlow's profiler; the peak is the best of a few 2048 x 2048
float32 matmuls timed in the same process.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from tutorial_helpers import quiet_import_tensorflow
from tutorial_helpers.runtime import set_seed

tf = quiet_import_tensorflow()
import keras  # noqa: E402

from tutorial_helpers import data, feeds, gan, loops, models, steps, timing  # noqa: E402
from tutorial_helpers.trainer import Trainer  # noqa: E402

#: rungs of the book's loops, each with the ``fit`` rung it must not be slower than
COUNTERPARTS = {
    "loops.train, 1 step/call": "fit",
    "Trainer.fit": "fit",
    "loops.train, 32 steps/call": "fit(spe=32)",
    "loops.train, epoch/call": "fit(spe=32)",
    "GAN step, 1 step/call": "fit",
    "GAN step, epoch/call": "fit(spe=32)",
}


class EpochClock:
    """Time stamps at the end of every epoch of whatever runs inside :meth:`running`."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def tick(self, *_: Any) -> None:
        self.stamps.append(time.perf_counter())

    def callback(self) -> keras.callbacks.Callback:
        """For ``fit()``: a tick at every ``on_epoch_end``."""
        return keras.callbacks.LambdaCallback(on_epoch_end=self.tick)

    @contextlib.contextmanager
    def running(self) -> Iterator[EpochClock]:
        """Also tick at every ``LossWatch.check``: the helper loops call it once per epoch."""
        check = feeds.LossWatch.check

        def ticking(watch: feeds.LossWatch, epoch: int) -> int:
            steps_done = check(watch, epoch)
            self.tick()
            return steps_done

        self.stamps = []
        feeds.LossWatch.check = ticking
        try:
            yield self
        finally:
            feeds.LossWatch.check = check

    def seconds_per_epoch(self) -> float:
        """Median duration of the epochs after the first (which includes tracing)."""
        if len(self.stamps) < 3:
            raise ValueError(f"need at least 3 epoch ends, got {len(self.stamps)}")
        return float(statistics.median(np.diff(self.stamps[1:])))


CLOCK = EpochClock()


@dataclass
class Workload:
    """A model, its data and its loss, and how many epochs each timed run trains."""

    name: str
    x: np.ndarray
    y: np.ndarray
    build: Callable[[], keras.Model]
    loss: Callable[[], keras.losses.Loss]
    batch_size: int = 32
    epochs: int = 5


def mlp_workload(name: str, samples: int, widths: tuple[int, ...], epochs: int) -> Workload:
    """An MLP ``widths[0] -> ... -> widths[-1]``; one output is regression, more are classes."""
    inputs, *hidden, outputs = widths
    rng = np.random.default_rng(0)
    if inputs == 3:
        x, y = data.make_regression_data(n=samples, seed=0)
    else:
        x = rng.normal(size=(samples, inputs)).astype(np.float32)
        y = (x @ rng.normal(size=(inputs, outputs))).astype(np.float32)
        if outputs > 1:
            y = np.argmax(y, axis=1).reshape(-1, 1).astype(np.float32)

    def build() -> keras.Model:
        return models.make_mlp(inputs, tuple(hidden), outputs, seed=0)

    def loss() -> keras.losses.Loss:
        if outputs == 1:
            return keras.losses.MeanSquaredError()
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    return Workload(name, x, y, build, loss, epochs=epochs)


WORKLOADS: dict[str, Callable[[], Workload]] = {
    "toy": lambda: mlp_workload("MLP 3-10-1, 1,000 samples", 1000, (3, 10, 1), epochs=10),
    "mid": lambda: mlp_workload("MLP 20-64-1, 20,000 samples", 20000, (20, 64, 1), epochs=3),
    "big": lambda: mlp_workload("MLP 784-256-256-10, 20,000 samples", 20000, (784, 256, 256, 10), epochs=4),
}


def mlp_rungs(w: Workload) -> dict[str, Callable[[int], keras.Model]]:
    """Every rung as ``run(n_epochs)``, training a fresh model from the same seed."""

    def fit(steps_per_execution: int) -> Callable[[int], keras.Model]:
        def run(n: int) -> keras.Model:
            model = w.build()
            model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=w.loss(),
                          steps_per_execution=steps_per_execution)
            model.fit(w.x, w.y, batch_size=w.batch_size, epochs=n, shuffle=False, verbose=0,
                      callbacks=[CLOCK.callback()])
            return model

        return run

    def helper(steps_per_execution: int | str) -> Callable[[int], keras.Model]:
        def run(n: int) -> keras.Model:
            model = w.build()
            loops.train(model, (w.x, w.y), batch_size=w.batch_size, optimizer=keras.optimizers.Adam(1e-3),
                        loss_fn=w.loss(), epochs=n, verbose=0, steps_per_execution=steps_per_execution)
            return model

        return run

    def trainer(n: int) -> keras.Model:
        model = w.build()
        Trainer(model, optimizer=keras.optimizers.Adam(1e-3), loss_fn=w.loss()).fit(
            (w.x, w.y), batch_size=w.batch_size, epochs=n
        )
        return model

    return {
        "fit": fit(1),
        "fit(spe=32)": fit(32),
        "loops.train, 1 step/call": helper(1),
        "loops.train, 32 steps/call": helper(32),
        "loops.train, epoch/call": helper("epoch"),
        "Trainer.fit": trainer,
    }


def gan_workload() -> tuple[Workload, dict[str, Callable[[int], keras.Model]]]:
    """The Chapter 9 GAN: its ``fit()`` against its ``train_step`` run by the book's feed."""
    images, labels = data.load_digit_images()
    labels = labels.reshape(-1, 1).astype(np.float32)

    def build(steps_per_execution: int = 1) -> gan.GAN:
        set_seed(0)
        model = gan.GAN(gan.build_discriminator(), gan.build_generator(32), latent_dim=32)
        model.compile(d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                      g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                      loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
                      steps_per_execution=steps_per_execution)
        return model

    w = Workload("GAN step (Chapter 9), 1,797 images", images, labels, build,
                 lambda: keras.losses.BinaryCrossentropy(from_logits=True), batch_size=64, epochs=5)

    def fit(steps_per_execution: int) -> Callable[[int], keras.Model]:
        def run(n: int) -> keras.Model:
            model = build(steps_per_execution)
            model.fit(images, batch_size=64, epochs=n, shuffle=False, verbose=0,
                      callbacks=[CLOCK.callback()])
            return model

        return run

    def feed(per_call: int | str) -> Callable[[int], keras.Model]:
        def run(n: int) -> keras.Model:
            model = build()
            watch = feeds.LossWatch()
            run_epoch, _ = loops.epoch_calls(lambda real, _labels: model.train_step(real)["d_loss"],
                                             (images, labels), 64, per_call=per_call, watch=watch)
            for epoch in range(1, n + 1):
                for _ in run_epoch():
                    pass
                watch.check(epoch)
            return model

        return run

    return w, {"fit": fit(1), "fit(spe=32)": fit(32),
               "GAN step, 1 step/call": feed(1), "GAN step, epoch/call": feed("epoch")}


def flops_per_sample(w: Workload) -> float:
    """Floating-point operations of one training step, per sample (TensorFlow's profiler)."""
    model = w.build()
    if isinstance(model, gan.GAN):
        def step(x, y):
            return model.train_step(x)["d_loss"]
    else:
        step = steps.train_step_body(model, keras.optimizers.Adam(1e-3), w.loss(), keras.metrics.Mean())
    specs = [tf.TensorSpec((w.batch_size, *a.shape[1:])) for a in (w.x, w.y)]
    return timing.step_flops(step, *specs) / w.batch_size


def measure(
    rungs: dict[str, Callable[[int], keras.Model]], epochs: int, repeats: int
) -> dict[str, float]:
    """Median seconds per steady epoch of every rung, the rungs interleaved within each repeat."""
    samples: dict[str, list[float]] = {name: [] for name in rungs}
    for _ in range(repeats):
        for name, run in rungs.items():
            with CLOCK.running() as clock:
                run(epochs + 1)
            samples[name].append(clock.seconds_per_epoch())
    return {name: statistics.median(values) for name, values in samples.items()}


def table(w: Workload, seconds: dict[str, float], flops: float, peak: float) -> str:
    """One workload's ladder: ms per epoch, speed relative to both ``fit`` rungs, GFLOP/s."""
    lines = [f"{w.name}: {-(-len(w.x) // w.batch_size)} steps/epoch, "
             f"{flops:,.0f} FLOP per sample per training step",
             f"  {'rung':28s} {'ms/epoch':>9s} {'fit/rung':>9s} {'spe32/rung':>11s} {'GFLOP/s':>8s} "
             f"{'of peak':>8s}"]
    for name, s in seconds.items():
        gflops = flops * len(w.x) / s / 1e9
        lines.append(f"  {name:28s} {s * 1e3:9.1f} {seconds['fit'] / s:8.2f}x "
                     f"{seconds['fit(spe=32)'] / s:10.2f}x {gflops:8.2f} {gflops / peak:7.1%}")
    return "\n".join(lines)


#: differences smaller than this are timing noise on a 2-core machine (the spread between repeats)
PARITY = 0.03


def slower_than_fit(seconds: dict[str, float]) -> tuple[list[str], list[str]]:
    """The book's rungs slower than their ``fit`` counterpart, and those within ``PARITY`` of it."""
    slower, even = [], []
    for name, ref in COUNTERPARTS.items():
        if name in seconds and seconds[name] > seconds[ref]:
            line = f"{name} ({seconds[name] * 1e3:.1f} ms) vs {ref} ({seconds[ref] * 1e3:.1f} ms)"
            (even if seconds[name] <= seconds[ref] * (1 + PARITY) else slower).append(line)
    return slower, even


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="toy,mid,big,gan",
                        help="comma-separated, from toy, mid, big, gan")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None,
                        help="timed epochs per run (default: per workload)")
    args = parser.parse_args()
    peak = timing.matmul_peak()
    print(f"matmul peak on this machine: {peak:.1f} GFLOP/s (2048 x 2048, float32)\n")
    problems, parity = [], []
    for key in args.workloads.split(","):
        if key == "gan":
            w, rungs = gan_workload()
        elif key in WORKLOADS:
            w = WORKLOADS[key]()
            rungs = mlp_rungs(w)
        else:
            parser.error(f"unknown workload {key!r}")
        seconds = measure(rungs, args.epochs or w.epochs, args.repeats)
        print(table(w, seconds, flops_per_sample(w), peak), "\n", flush=True)
        slower, even = slower_than_fit(seconds)
        problems += [f"{key}: {line}" for line in slower]
        parity += [f"{key}: {line}" for line in even]
    if parity:
        print(f"at parity (within {PARITY:.0%}, timing noise):\n  " + "\n  ".join(parity))
    print("every book rung at least as fast as its fit() counterpart" if not problems
          else "slower than fit():\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main()
