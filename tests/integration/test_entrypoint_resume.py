"""The entry point stopped by SIGTERM (what a spot reclaim sends) and started again: it
continues from its last completed epoch and ends with the history of an uninterrupted run."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from defects.training import contract
from defects.training.interruption import EXIT_STATUS
from tests import entrypoint

# The network from scratch: the pretrained one resumes in tests/integration/test_pretrained_job.py.
ARGUMENTS = ["--epochs", "4", "--image_size", "40x24", "--batch_size", "8", "--model", "scratch"]


def _start(base: Path, channels: dict[str, Path], *extra: str) -> subprocess.Popen[str]:
    return entrypoint.start(base, channels, *ARGUMENTS, *extra)


@pytest.fixture(scope="module")
def channels(tiny_photos: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from defects.dataset.prepare import prepare

    dataset = prepare(tiny_photos, data_dir=tmp_path_factory.mktemp("data"))
    return {split: dataset.root / split for split in ("train", "validation")}


@pytest.fixture(scope="module")
def shards(tiny_photos: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same data as tar shards, as staging uploads them, a few images in each."""
    from defects.dataset.prepare import prepare
    from defects.dataset.shards import shards_for

    dataset = prepare(tiny_photos, data_dir=tmp_path_factory.mktemp("data"))
    root = tmp_path_factory.mktemp("shards")
    for shard in shards_for(dataset, limit=20_000):
        (root / shard.split).mkdir(exist_ok=True)
        (root / shard.split / shard.name).write_bytes(shard.path.read_bytes())
    return {split: root / split for split in ("train", "validation")}


@pytest.mark.parametrize("streamed", [False, True], ids=["cached", "streamed-from-shards"])
def test_sigterm_leaves_a_checkpoint_and_the_next_attempt_ends_like_an_unbroken_run(
    streamed: bool, channels: dict[str, Path], shards: dict[str, Path], tmp_path: Path
) -> None:
    # Streamed: every split over a budget of nothing, read from its shards every epoch.
    extra = ["--cache_mb", "0"] if streamed else []
    channels = shards if streamed else channels
    interrupted = tmp_path / "interrupted" / "ml"
    process = _start(interrupted, channels, *extra)
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("Epoch 2/4"):  # Printed once epoch 2 is saved.
            break
    else:
        pytest.fail("the entry point ended before its second epoch: " + "".join(seen)[-2000:])
    process.send_signal(signal.SIGTERM)
    output = "".join(seen) + process.communicate(timeout=120)[0]
    assert process.returncode == EXIT_STATUS, output[-2000:]
    failure = (interrupted / contract.FAILURE_PATH).read_text()
    assert failure.startswith(f"{contract.INTERRUPTED_REASON} by SIGTERM after epoch ")
    state = json.loads((interrupted / "checkpoints" / "state.json").read_text())
    assert state["epoch"] in {2, 3}

    resumed_output = entrypoint.finish(_start(interrupted, channels, *extra))
    assert ("streamed from a decoded copy on disk" in resumed_output) is streamed
    assert f"Resuming from the checkpoint of epoch {state['epoch']}." in resumed_output
    unbroken = tmp_path / "unbroken" / "ml"
    entrypoint.finish(_start(unbroken, channels, *extra))
    resumed, expected = entrypoint.history(interrupted), entrypoint.history(unbroken)
    assert resumed["epoch"] == expected["epoch"] == [1, 2, 3, 4]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert resumed[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key


def test_sigterm_before_the_first_epoch_says_so(channels: dict[str, Path], tmp_path: Path) -> None:
    base = tmp_path / "ml"
    process = _start(base, channels)
    time.sleep(0.5)  # In the middle of importing TensorFlow.
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == EXIT_STATUS, output[-2000:]
    failure = (base / contract.FAILURE_PATH).read_text()
    expected = f"{contract.INTERRUPTED_REASON} by SIGTERM before its first epoch completed.\n"
    assert failure == expected
