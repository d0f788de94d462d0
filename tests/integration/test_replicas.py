"""Several replicas of one instance (MirroredStrategy), as on an instance with several GPUs:
here two logical CPU devices. The entry point trains, saves and resumes under the strategy."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from defects.training.hardware import CPU_REPLICAS_ENV
from defects.training.interruption import EXIT_STATUS
from tests import entrypoint

pytestmark = pytest.mark.slow
ARGUMENTS = ["--epochs", "3", "--image_size", "40x24", "--batch_size", "4", "--model", "scratch"]


@pytest.fixture(scope="module")
def channels(tiny_photos: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from defects.dataset.prepare import prepare

    dataset = prepare(tiny_photos, data_dir=tmp_path_factory.mktemp("data"))
    return {split: dataset.root / split for split in ("train", "validation", "test")}


def _start(base: Path, channels: dict[str, Path]) -> subprocess.Popen[str]:
    return entrypoint.start(base, channels, *ARGUMENTS, environment={CPU_REPLICAS_ENV: "2"})


def test_two_replicas_train_save_and_resume(channels: dict[str, Path], tmp_path: Path) -> None:
    base = tmp_path / "ml"
    process = _start(base, channels)
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("Epoch 1/3"):
            break
    process.send_signal(signal.SIGTERM)
    output = "".join(seen) + process.communicate(timeout=120)[0]
    assert process.returncode == EXIT_STATUS, output[-3000:]
    assert "2 replicas" in output

    resumed = _start(base, channels)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output[-3000:]
    assert "Resuming from the checkpoint of epoch " in output
    metrics = json.loads((base / "output" / "data" / "metrics.json").read_text())
    assert metrics["replicas"] == 2
    assert metrics["training"]["epochs_run"] == 3
    # The global batch is the per-replica batch times the replicas: 16 images, 2 steps.
    history = json.loads((base / "output" / "data" / "history.json").read_text())
    assert history["epoch"] == [1, 2, 3]

    import keras

    import defects.training.model  # noqa: F401  (its layers, registered for loading)

    loaded = keras.models.load_model(base / "model" / "model.keras")
    assert loaded.output_shape == (None, 4)
