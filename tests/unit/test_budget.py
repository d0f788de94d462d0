"""The training budget and the automatic input size: pure functions, no training."""

from __future__ import annotations

import io
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from defects.dataset.manifest import PreparedDataset
from defects.pipeline.request import resolve_image_size
from defects.training import budget, contract


def test_the_epoch_cap_gives_small_datasets_enough_optimizer_steps() -> None:
    # 168 photos in batches of 32: 6 steps an epoch, so 1,000 steps take 167 epochs.
    assert contract.epoch_cap(168, 32) == 167
    # 784 photos: 25 steps an epoch; the floor of 60 epochs gives more than 1,000 steps.
    assert contract.epoch_cap(784, 32) == contract.MIN_EPOCHS == 60


def test_the_epoch_cap_has_a_floor_and_a_ceiling() -> None:
    assert contract.epoch_cap(100_000, 32) == contract.MIN_EPOCHS
    assert contract.epoch_cap(8, 32) == contract.MAX_EPOCHS


def _monitored(
    scores: list[float],
    earliest_stop: int,
    losses: list[float] | None = None,
    stopping: budget.ResumableEarlyStopping | None = None,
) -> tuple[int | None, int]:
    """Feed ``scores`` (and validation ``losses``) to early stopping epoch by epoch: the
    epoch it stopped after (or None) and the best epoch (1-based)."""
    stopping = stopping or budget.ResumableEarlyStopping(patience=3, earliest_stop=earliest_stop)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    stopping.set_model(model)
    model.stop_training = False
    stopping.on_train_begin()
    for epoch, score in enumerate(scores):
        logs = {budget.MONITOR: score}
        if losses is not None:
            logs["val_loss"] = losses[epoch]
        stopping.on_epoch_end(epoch, logs)
        if model.stop_training:
            return epoch + 1, stopping.best_epoch + 1
    return None, stopping.best_epoch + 1


def test_early_stopping_waits_for_the_earliest_epoch_but_keeps_the_best_before_it() -> None:
    # Best at epoch 2, then flat: patience 3 would stop after epoch 5; not before epoch 8.
    scores = [0.5, 0.7, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    assert _monitored(scores, earliest_stop=0) == (5, 2)
    assert _monitored(scores, earliest_stop=8) == (8, 2)


def test_an_improvement_before_the_earliest_epoch_restarts_the_patience() -> None:
    scores = [0.5, 0.6, 0.6, 0.6, 0.6, 0.8, 0.7, 0.7, 0.7, 0.7, 0.7]
    assert _monitored(scores, earliest_stop=6) == (9, 6)


def test_a_tie_goes_to_the_lower_validation_loss_without_restarting_the_patience() -> None:
    # A small validation split reaches 1.0 at epoch 2 and stays there while the loss falls.
    scores = [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    losses = [0.9, 0.6, 0.4, 0.3, 0.5, 0.2, 0.1]
    assert _monitored(scores, earliest_stop=0) == (5, 2)
    # The same stop (patience counts from epoch 2), the weights of epoch 4.
    assert _monitored(scores, earliest_stop=0, losses=losses) == (5, 4)
    # A higher score still wins over a lower loss.
    assert _monitored([0.5, 0.8, 0.7], earliest_stop=0, losses=[0.3, 0.9, 0.1]) == (None, 2)


def test_a_restored_best_keeps_its_loss() -> None:
    stopping = budget.ResumableEarlyStopping(patience=10)
    state = {"best": 0.9, "best_epoch": 1, "best_loss": 0.2, "wait": 0}
    stopping.restore(state, [np.zeros(1)])
    # Epoch 3 ties the restored best with a higher loss, epoch 4 with a lower one.
    scores, losses = [0.5, 0.5, 0.9, 0.9], [1.0, 1.0, 0.3, 0.1]
    assert _monitored(scores, 0, losses, stopping) == (None, 4)
    assert stopping.state()["best_loss"] == pytest.approx(0.1)


def test_the_earliest_stop_is_half_the_cap() -> None:
    assert budget.earliest_stop(60) == 30
    assert budget.earliest_stop(1) == 1


def test_macro_f1_averages_the_classes_equally() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1])
    predictions = np.array([0, 0, 0, 0, 0, 1])
    # Class 0: precision 4/5, recall 1, F1 8/9; class 1: precision 1, recall 1/2, F1 2/3.
    assert budget.macro_f1(labels, predictions, 2) == pytest.approx((8 / 9 + 2 / 3) / 2)


def test_macro_f1_counts_a_class_never_predicted_as_zero() -> None:
    labels = np.array([0, 1, 2])
    predictions = np.array([0, 0, 0])
    assert budget.macro_f1(labels, predictions, 3) == pytest.approx((2 * 1 / 3 / (1 + 1 / 3)) / 3)


@pytest.mark.parametrize(
    ("sizes", "shape"),
    [
        # The phone photos (16:9) at any size: 384x216, as the default has been.
        ([(1920, 1080)], (216, 384)),
        ([(640, 360)], (216, 384)),
        ([(960, 540)], (216, 384)),
        # Square solar cells: 288x288, about the same number of pixels.
        ([(300, 300)], (288, 288)),
        # Small images are never upscaled.
        ([(100, 100)], (100, 100)),
        ([(64, 48)], (48, 64)),
        # Portrait photos stay portrait.
        ([(1080, 1920)], (384, 216)),
    ],
)
def test_the_automatic_size_keeps_the_shape_and_a_pixel_budget(
    sizes: list[tuple[int, int]], shape: tuple[int, int]
) -> None:
    assert contract.auto_image_shape(sizes) == shape


@pytest.mark.parametrize(
    ("sizes", "shape"),
    [
        # The pretrained network's own 224x224 for square cells: not 216, one multiple of 8
        # below, which the square root's rounding gave.
        ([(300, 300)], (224, 224)),
        ([(1920, 1080)], (168, 296)),
        ([(640, 360)], (168, 296)),
        ([(224, 224)], (224, 224)),
        ([(100, 100)], (100, 100)),
    ],
)
def test_the_pretrained_networks_automatic_size_is_about_its_own_224x224(
    sizes: list[tuple[int, int]], shape: tuple[int, int]
) -> None:
    budget = contract.pixel_budget("efficientnet_lite0")
    assert contract.auto_image_shape(sizes, budget) == shape


def test_the_automatic_size_follows_the_median_image() -> None:
    sizes = [(300, 300)] * 5 + [(4000, 3000)] * 2
    assert contract.auto_image_shape(sizes) == (288, 288)


def test_the_automatic_size_stays_within_the_side_range() -> None:
    height, width = contract.auto_image_shape([(4000, 100)])
    low, high = contract.IMAGE_SIDE_RANGE
    assert low <= height <= high and low <= width <= high


def test_the_automatic_size_needs_sizes() -> None:
    with pytest.raises(ValueError, match="no image sizes"):
        contract.auto_image_shape([])


def _encoded(image_format: str, size: tuple[int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "BMP"])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_the_entry_point_reads_sizes_from_image_headers(image_format: str, mode: str) -> None:
    from defects.training import data

    assert data.image_size(_encoded(image_format, (300, 200), mode)) == (300, 200)


def test_an_unknown_format_has_no_size() -> None:
    from defects.training import data

    assert data.image_size(b"GIF89a" + bytes(20)) is None


def _dataset(sizes: list[tuple[int, int]]) -> PreparedDataset:
    files = [
        {"path": f"train/a/{i}.png", "split": "train", "width": w, "height": h}
        for i, (w, h) in enumerate(sizes)
    ]
    files.append({"path": "test/a/x.png", "split": "test", "width": 4000, "height": 4000})
    return PreparedDataset(Path("."), {"dataset_id": "x", "files": files})


def test_the_host_resolves_auto_from_the_manifest_train_images() -> None:
    resolved = resolve_image_size({"image_size": "auto", "epochs": 3}, _dataset([(300, 300)]))
    assert resolved == {"image_size": "288", "epochs": 3}


def test_the_host_keeps_an_explicit_size() -> None:
    resolved = resolve_image_size({"image_size": "64"}, _dataset([(300, 300)]))
    assert resolved == {"image_size": "64"}


def test_auto_is_the_default_for_epochs_and_image_size() -> None:
    defaults = contract.hyperparameter_defaults()
    assert defaults["epochs"] == defaults["image_size"] == "auto"


@pytest.mark.parametrize(("given", "value"), [("auto", "auto"), ("AUTO", "auto"), ("12", 12)])
def test_the_schema_takes_epochs_as_a_count_or_auto(given: str, value: object) -> None:
    assert contract.complete_hyperparameters({"epochs": given})["epochs"] == value


def test_the_schema_takes_an_automatic_image_size() -> None:
    assert contract.complete_hyperparameters({"image_size": "Auto"})["image_size"] == "auto"


def test_a_run_of_one_epoch_says_epoch() -> None:
    assert budget.stop_reason(1, 1, None, False) == "ran the 1 epoch asked for"
    assert budget.stop_reason(3, 3, None, False) == "ran the 3 epochs asked for"


def test_the_host_says_that_it_chose_the_size_the_entry_point_gets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from defects.backends.base import Backend, TrainingJob, TrainingResult
    from defects.pipeline.launch import train
    from defects.settings import resolve
    from defects.storage import Layout, Storage

    class Recording(Backend):
        name = "recording"

        def train(self, job: TrainingJob, store: Storage) -> TrainingResult:
            self.given = job.hyperparameters
            return TrainingResult(job.name, "s3://b/model.tar.gz", "s3://b/output")

    backend = Recording(resolve({"runs_dir": tmp_path / "runs"}, environ={}))
    store = Storage(Layout("b", "p"), "us-east-1", session=None, s3=None)
    with caplog.at_level(logging.INFO, logger="defects"):
        train({}, store, backend, {"image_size": "auto"}, "sized", dataset=_dataset([(300, 300)]))
    assert backend.given == {"image_size": "288"}
    assert "Image size 288, chosen automatically from the train images' sizes" in caplog.text
