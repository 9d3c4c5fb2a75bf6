"""Chapter 11: the same training loop on several worker processes (``MultiWorkerMirroredStrategy``).

Run as a module, this file is one worker::

    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:P0", "127.0.0.1:P1"]},
                "task": {"type": "worker", "index": 0}}' \\
    python -m tutorial_helpers.multiworker --outdir OUT --epochs 3

Every worker builds the same model under the strategy's scope and runs
:func:`tutorial_helpers.loops.train` unchanged; each global batch is split
between the workers and the gradients are summed across them.  Every worker
writes its final weights to ``OUT/worker-<index>.npz`` and its
history, with the number of replicas it trained with, to ``OUT/worker-<index>.json``; only the chief (worker
0) keeps a checkpoint in ``OUT/checkpoint``, the others write theirs to a
temporary folder and delete it (saving is a collective operation: all workers
must take part).

:func:`run_workers` launches the workers on free loopback ports, waits for them
with a time limit, and always cleans up.  The workers run on the CPU, with every
GPU hidden from them (:func:`worker_environment`): on a GPU machine they would
otherwise all open the same GPUs, and their results would no longer equal a
CPU reference (a GPU rounds float32 matmuls to TF32).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

N_SAMPLES = 512
GLOBAL_BATCH = 64


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that are free right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def build_model(seed: int = 0):
    """The model every worker (and the single-process reference) trains."""
    from tutorial_helpers.models import make_mlp

    return make_mlp(3, (16,), seed=seed)


def train_here(epochs: int, seed: int = 0):
    """Train :func:`build_model` with ``loops.train`` under the current strategy (if any).

    Returns ``(model, history)``.  The data are the Chapter 2 regression
    (``N_SAMPLES`` samples) in global batches of ``GLOBAL_BATCH``.
    """
    import keras
    import tensorflow as tf

    from tutorial_helpers import data, loops

    x, y = data.make_regression_data(n=N_SAMPLES, seed=seed)
    strategy = tf.distribute.get_strategy()
    with strategy.scope():
        model = build_model(seed)
        optimizer = keras.optimizers.Adam(0.01)
        optimizer.build(model.trainable_variables)  # inside the scope (see STACK notes)
    history = loops.train(
        model, (x, y), batch_size=GLOBAL_BATCH, optimizer=optimizer,
        loss_fn=keras.losses.MeanSquaredError(), epochs=epochs, verbose=0,
    )
    return model, optimizer, history


def _worker_main(outdir: Path, epochs: int) -> None:
    from tutorial_helpers.runtime import quiet_import_tensorflow, set_seed

    tf = quiet_import_tensorflow()
    set_seed(0)
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    with strategy.scope():  # train_here finds the strategy through this scope
        model, optimizer, history = train_here(epochs)
    is_chief = index == 0
    directory = outdir / "checkpoint" if is_chief else Path(tempfile.mkdtemp(prefix=f"worker{index}-"))
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer)
    tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=1).save()
    if not is_chief:
        tf.io.gfile.rmtree(str(directory))
    np.savez(outdir / f"worker-{index}.npz", *model.get_weights())
    history["replicas_in_sync"] = [float(strategy.num_replicas_in_sync)]
    (outdir / f"worker-{index}.json").write_text(json.dumps(history))


def worker_environment(cluster: dict[str, list[str]], index: int) -> dict[str, str]:
    """The environment of worker ``index``: this process's, with its ``TF_CONFIG`` and no GPUs."""
    from tutorial_helpers.runtime import cpu_only_environment

    env = cpu_only_environment()
    env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
    return env


def run_workers(outdir: str | Path, num_workers: int = 2, epochs: int = 3, timeout: float = 180.0):
    """Run ``num_workers`` worker processes on loopback; return each worker's final weights.

    Raises ``RuntimeError`` with the failing worker's last output if a worker
    fails, and ``TimeoutError`` if they do not finish within ``timeout``
    seconds.  Every process is terminated before this returns or raises.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(num_workers)]}
    processes = []
    try:
        for index in range(num_workers):
            env = worker_environment(cluster, index)
            log = open(outdir / f"worker-{index}.log", "w")
            processes.append((subprocess.Popen(
                [sys.executable, "-m", "tutorial_helpers.multiworker",
                 "--outdir", str(outdir), "--epochs", str(epochs)],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            ), log))
        for index, (process, _) in enumerate(processes):
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired as error:
                raise TimeoutError(f"worker {index} did not finish within {timeout} s") from error
            if code != 0:
                tail = (outdir / f"worker-{index}.log").read_text()[-2000:]
                raise RuntimeError(f"worker {index} exited with code {code}:\n{tail}")
    finally:
        for process, log in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    weights = []
    for index in range(num_workers):
        with np.load(outdir / f"worker-{index}.npz") as archive:
            weights.append([archive[f"arr_{i}"] for i in range(len(archive.files))])
    return weights


def main() -> None:
    parser = argparse.ArgumentParser(description="One worker of a MultiWorkerMirroredStrategy run.")
    parser.add_argument("--outdir", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    if "TF_CONFIG" not in os.environ:
        parser.error("TF_CONFIG must describe the cluster and this worker's index")
    _worker_main(args.outdir, args.epochs)


if __name__ == "__main__":
    main()
