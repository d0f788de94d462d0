"""Early stopping, the best epoch's weights, resuming with early stopping, and grayscale input,
through the real entry point on tiny images."""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defects.training import budget, contract
from defects.training import checkpoints as epoch_checkpoints
from tests import entrypoint

pytestmark = pytest.mark.slow


def _run(base: Path, channels: dict[str, Path], *arguments: str) -> dict:
    # Batches of 2: the 48 training images make 24 steps an epoch, so the cap (and its
    # half, the earliest stop) is the floor, not the 200 epochs of 2 steps each.
    result = entrypoint.run(
        base,
        channels,
        *("--augment", "false", "--batch_size", "2", "--model", "scratch", *arguments),
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    output = base / contract.OUTPUT_DATA_PATH
    return {
        "metrics": json.loads((output / contract.METRICS_FILE).read_text()),
        "history": json.loads((output / contract.HISTORY_FILE).read_text()),
        "stdout": result.stdout,
    }


def _draw(folder: Path, brightness: dict[str, int], count: int, mode: str = "RGB") -> None:
    """``count`` 24x24 images per class, each class its own brightness plus noise."""
    # Seeded by the folder's own name, not its place: the same images in every temporary
    # folder.
    rng = np.random.default_rng(zlib.crc32(folder.name.encode()))
    for name, level in brightness.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            noise = rng.integers(-40, 41, size=(24, 24, 3))
            pixels = np.clip(level + noise, 0, 255).astype(np.uint8)
            image = Image.fromarray(pixels, mode="RGB")
            if mode == "L":
                image = image.convert("L")
            image.save(folder / name / f"{index:03d}.png")


@pytest.fixture(scope="module")
def swapped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Validation labels the opposite of the training labels: the better the network learns
    the training images, the worse it does on validation, so validation peaks early."""
    root = tmp_path_factory.mktemp("swapped")
    _draw(root / "train", {"bright": 200, "dark": 60}, 24)
    _draw(root / "validation", {"bright": 60, "dark": 200}, 8)
    return {name: root / name for name in ("train", "validation")}


def test_early_stopping_keeps_the_best_epoch(tmp_path: Path, swapped: dict[str, Path]) -> None:
    run = _run(tmp_path / "ml", swapped, "--epochs", "auto", "--image_size", "24")
    history, training = run["history"], run["metrics"]["training"]
    scores = history[budget.MONITOR]
    # The best macro-F1; of equals, the lower validation loss.
    best = max(range(len(scores)), key=lambda i: (scores[i], -history["val_loss"][i])) + 1
    assert training["kept_epoch"] == history["kept_epoch"] == best
    assert training["stopped_early"] is True
    # Out of patience PATIENCE epochs after the best score was first reached (an equal score
    # with a lower loss later is kept, but does not restart the patience), and never before
    # half the cap.
    first_best = scores.index(max(scores)) + 1
    assert training["earliest_stop"] == budget.earliest_stop(training["epoch_cap"])
    assert (
        training["epochs_run"]
        == len(scores)
        == max(first_best + budget.PATIENCE, training["earliest_stop"])
    )
    assert training["epochs_run"] < training["epoch_cap"]
    assert "did not improve" in training["stop_reason"] == history["stop_reason"]
    # The saved model is the best epoch's: it scores on validation what that epoch scored.
    assert run["metrics"]["validation"]["macro_f1"] == pytest.approx(scores[best - 1])
    assert f"Kept the weights of epoch {best} of {len(scores)}" in run["stdout"]


def test_fixed_epochs_run_exactly_and_keep_the_last(
    tmp_path: Path, swapped: dict[str, Path]
) -> None:
    run = _run(tmp_path / "ml", swapped, "--epochs", "3", "--image_size", "24")
    training = run["metrics"]["training"]
    assert training["epochs_run"] == training["kept_epoch"] == 3
    assert training["stopped_early"] is False
    assert run["metrics"]["validation"]["macro_f1"] == pytest.approx(
        run["history"][budget.MONITOR][-1]
    )


def test_a_restart_after_the_stop_trains_nothing_and_keeps_the_best_epoch(
    tmp_path: Path, swapped: dict[str, Path]
) -> None:
    # Interrupted after the last epoch's checkpoint (while the model was being saved).
    first = _run(tmp_path / "first", swapped, "--epochs", "auto", "--image_size", "24")
    shutil.copytree(
        tmp_path / "first" / contract.CHECKPOINTS_PATH,
        tmp_path / "second" / contract.CHECKPOINTS_PATH,
    )
    second = _run(tmp_path / "second", swapped, "--epochs", "auto", "--image_size", "24")
    before, after = first["metrics"], second["metrics"]
    assert after["training"]["resumed_after_epoch"] == before["training"]["epochs_run"]
    assert after["training"]["epochs_run"] == before["training"]["epochs_run"]
    assert after["training"]["kept_epoch"] == before["training"]["kept_epoch"]
    assert after["validation"]["macro_f1"] == pytest.approx(before["validation"]["macro_f1"])
    # No epoch trained here, so no throughput was measured (the price estimate skips it).
    assert after["train_images_per_second"] is None
    assert before["train_images_per_second"] > 0


def test_a_restart_keeps_the_early_stopping_state(tmp_path: Path, swapped: dict[str, Path]) -> None:
    first = _run(tmp_path / "first", swapped, "--epochs", "auto", "--image_size", "24")
    kept = first["metrics"]["training"]["kept_epoch"]
    # Interrupted two epochs after the best one: put the checkpoint folder back to that
    # moment, with a best value nothing can beat, as a spot restart would find it.
    checkpoints = tmp_path / "second" / contract.CHECKPOINTS_PATH
    shutil.copytree(tmp_path / "first" / contract.CHECKPOINTS_PATH, checkpoints)
    state = json.loads((checkpoints / epoch_checkpoints.STATE_FILE).read_text())
    resumed_at, wait = kept + 2, 2
    state["epoch"] = resumed_at
    state["history"] = {key: values[:resumed_at] for key, values in state["history"].items()}
    state["extra"]["early_stopping"] = {
        "best": 1.0,
        "best_epoch": kept - 1,
        "best_loss": 0.0,
        "wait": wait,
        "stopped": False,
    }
    (checkpoints / epoch_checkpoints.STATE_FILE).write_text(json.dumps(state))

    second = _run(tmp_path / "second", swapped, "--epochs", "auto", "--image_size", "24")
    training = second["metrics"]["training"]
    assert f"Resuming from the checkpoint of epoch {resumed_at}" in second["stdout"]
    assert training["resumed_after_epoch"] == resumed_at
    # The patience went on counting from the restored wait, not from zero.
    assert training["epochs_run"] == max(
        resumed_at + budget.PATIENCE - wait, training["earliest_stop"]
    )
    assert training["kept_epoch"] == kept
    # The model saved is the best epoch's, read back from the checkpoint folder.
    assert second["metrics"]["validation"]["macro_f1"] == pytest.approx(
        first["history"][budget.MONITOR][kept - 1]
    )


def test_a_restart_after_early_stopping_trains_no_further(
    tmp_path: Path, swapped: dict[str, Path]
) -> None:
    first = _run(tmp_path / "ml", swapped, "--epochs", "auto", "--image_size", "24")
    second = _run(tmp_path / "ml", swapped, "--epochs", "auto", "--image_size", "24")
    assert second["metrics"]["training"]["epochs_run"] == first["metrics"]["training"]["epochs_run"]
    assert second["metrics"]["validation"] == first["metrics"]["validation"]


def test_grayscale_images_train_at_their_own_size(tmp_path: Path) -> None:
    for split, count in (("train", 16), ("validation", 6), ("test", 6)):
        _draw(tmp_path / "data" / split, {"bright": 190, "dark": 70}, count, mode="L")
    assert Image.open(next((tmp_path / "data" / "train" / "dark").iterdir())).mode == "L"
    channels = {split: tmp_path / "data" / split for split in contract.CHANNELS}
    # Small batches: enough optimizer steps for the batch statistics to settle.
    run = _run(tmp_path / "ml", channels, "--epochs", "6", "--batch_size", "4")
    metrics = run["metrics"]
    assert metrics["image_size"] == "24"
    assert metrics["image_size_from"].startswith("auto")
    assert metrics["validation"]["accuracy"] == 1.0
    assert metrics["test"]["accuracy"] == 1.0
