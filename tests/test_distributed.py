"""Chapter 11: the helper loop under MirroredStrategy and MultiWorkerMirroredStrategy.

Splitting the CPU into logical devices must happen before TensorFlow runs any
operation, and the multi-worker run needs separate processes, so these tests
run their training in fresh Python processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tutorial_helpers import multiworker
from tutorial_helpers.runtime import set_seed, split_cpu

MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json
    from tutorial_helpers.runtime import quiet_import_tensorflow, set_seed, split_cpu
    tf = quiet_import_tensorflow()
    split_cpu(2)
    set_seed(0)
    import keras
    from tutorial_helpers import data, loops, models
    from tutorial_helpers.compare import max_weight_difference

    x, y = data.make_regression_data(n=512, seed=0)
    def build():
        return models.make_mlp(3, (8,), kernel_regularizer=keras.regularizers.L2(1e-3), seed=0)
    def run(model, optimizer, per_replica_mean=False):
        mse = keras.losses.MeanSquaredError()
        loss_fn = mse
        if per_replica_mean:  # the bug: a mean over the local batch, summed over replicas
            loss_fn = lambda y, p, sample_weight=None: tf.reduce_mean(tf.square(y - p))
        return loops.train(model, (x, y), batch_size=64, optimizer=optimizer, loss_fn=loss_fn,
                           epochs=3, verbose=0, validation_data=(x[:128], y[:128]),
                           metrics=[keras.metrics.MeanAbsoluteError(name="mae")])
    with tf.device("/cpu:0"):  # the reference on the replicas' kind of device, also on a GPU machine
        single = build()
        single_history = run(single, keras.optimizers.SGD(0.05))
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = {"replicas": strategy.num_replicas_in_sync}
    for name, bug in (("mirrored", False), ("per_replica_mean", True)):
        with strategy.scope():
            model = build()
            optimizer = keras.optimizers.SGD(0.05)
            optimizer.build(model.trainable_variables)
            history = run(model, optimizer, per_replica_mean=bug)
        results[name] = max_weight_difference(single, model)
        results[name + "_history"] = history
    results["single_history"] = single_history
    print(json.dumps(results))
    """
)


def test_mirrored_two_replicas_equal_one_device_with_the_same_global_batch() -> None:
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    assert results["replicas"] == 2
    assert results["mirrored"] <= 1e-5
    for key, values in results["single_history"].items():
        np.testing.assert_allclose(results["mirrored_history"][key], values, rtol=1e-5, err_msg=key)
    # averaging per replica doubles the effective gradient: the run goes elsewhere
    assert results["per_replica_mean"] > 1e-3


def test_split_cpu_after_the_first_operation_is_a_clear_error() -> None:
    float(tf.reduce_sum(tf.ones(2)))  # the runtime is certainly initialized now
    with pytest.raises(RuntimeError, match="before TensorFlow runs its first operation"):
        split_cpu(2)
    with pytest.raises(ValueError, match="devices"):
        split_cpu(0)


def test_two_workers_on_loopback_agree_with_each_other_and_with_one_process(tmp_path: Path) -> None:
    weights = multiworker.run_workers(tmp_path, num_workers=2, epochs=3, timeout=240)
    for a, b in zip(weights[0], weights[1], strict=True):
        np.testing.assert_array_equal(a, b)
    set_seed(0)
    with tf.device("/cpu:0"):  # the workers run on the CPU; so does the reference
        model, _, _ = multiworker.train_here(epochs=3)
    for a, b in zip(weights[0], model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for index in range(2):  # both trained as one two-replica job, not as two separate runs
        history = json.loads((tmp_path / f"worker-{index}.json").read_text())
        assert history["replicas_in_sync"] == [2.0]
    assert (tmp_path / "checkpoint" / "checkpoint").exists()  # the chief's checkpoint, and only it
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["checkpoint"]


def _worker_processes(outdir: Path) -> list[int]:
    """The live worker processes of the run writing to ``outdir`` (other runs may be going on)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"tutorial_helpers.multiworker" in cmdline and str(outdir).encode() in cmdline:
                pids.append(int(proc.name))
    return pids


def test_failed_workers_are_reported_and_cleaned_up(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"worker \d exited with code"):
        multiworker.run_workers(tmp_path, num_workers=2, epochs=0, timeout=120)
    assert _worker_processes(tmp_path) == []


def test_slow_workers_time_out_and_are_cleaned_up(tmp_path: Path) -> None:
    with pytest.raises(TimeoutError, match="did not finish within"):
        multiworker.run_workers(tmp_path, num_workers=2, epochs=3, timeout=0.5)
    assert _worker_processes(tmp_path) == []


def test_free_ports_are_distinct() -> None:
    ports = multiworker.free_ports(4)
    assert len(set(ports)) == 4 and all(1024 <= p < 65536 for p in ports)
