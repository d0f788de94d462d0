"""The entry point as SageMaker runs it: a bare ``python train.py`` with SM_* variables."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests import entrypoint


def _run(base: Path, channels: dict[str, Path], *arguments: str) -> subprocess.CompletedProcess:
    """The network from scratch, unless ``arguments`` name another (it needs no weights)."""
    if "--model" not in arguments:
        arguments = ("--model", "scratch", *arguments)
    return entrypoint.run(base, channels, *arguments, timeout=300)


def test_missing_channel_writes_the_failure_file(tmp_path: Path) -> None:
    result = _run(tmp_path, {"train": tmp_path / "nope"})
    assert result.returncode == 1
    failure = (tmp_path / "output" / "failure").read_text()
    assert "'train' channel folder" in failure


def test_bad_hyperparameter_writes_the_failure_file(tmp_path: Path) -> None:
    result = _run(tmp_path, {}, "--epochs", "zero")
    assert result.returncode == 1
    assert "epochs" in (tmp_path / "output" / "failure").read_text()


def test_unknown_arguments_are_ignored(tmp_path: Path, tiny_photos: Path) -> None:
    from defects.dataset.prepare import prepare

    dataset = prepare(tiny_photos, data_dir=tmp_path / "data")
    channels = {split: dataset.root / split for split in ("train", "validation", "test")}
    result = _run(
        tmp_path / "ml",
        channels,
        "--epochs",
        "1",
        "--image_size",
        "32",
        "--model_dir",
        "s3://bucket/whatever",
        "--sagemaker_program",
        "train.py",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "ml" / "model" / "model.keras").is_file()
    assert (tmp_path / "ml" / "output" / "data" / "history.json").is_file()


def test_shard_channels_train_like_folder_channels(tmp_path: Path, tiny_photos: Path) -> None:
    import json

    from defects.dataset.prepare import prepare
    from defects.dataset.shards import shards_for

    dataset = prepare(tiny_photos, data_dir=tmp_path / "data")
    # Small shards, so that a split spans several of them.
    shards_for(dataset, limit=20_000)
    runs = {}
    for layout, root in (("folders", dataset.root), ("shards", dataset.root / "shards")):
        channels = {split: root / split for split in ("train", "validation", "test")}
        result = _run(tmp_path / layout, channels, "--epochs", "2", "--image_size", "32")
        assert result.returncode == 0, result.stderr[-2000:]
        output = tmp_path / layout / "output" / "data"
        runs[layout] = {
            name: json.loads((output / f"{name}.json").read_text())
            for name in ("metrics", "history")
        }
    assert len(list((dataset.root / "shards" / "train").glob("part-*.tar"))) > 1
    # The same images in the same order: the same training, epoch for epoch.
    assert runs["shards"]["history"] == runs["folders"]["history"]
    shards, folders = runs["shards"]["metrics"], runs["folders"]["metrics"]
    for key in ("class_names", "train_images"):
        assert shards[key] == folders[key]
    for split in ("validation", "test"):
        assert shards[split]["count"] == folders[split]["count"] > 0
        assert shards[split]["confusion_matrix"] == folders[split]["confusion_matrix"]


def test_a_broken_shard_writes_the_failure_file(tmp_path: Path) -> None:
    for channel in ("train", "validation"):
        (tmp_path / channel).mkdir()
        (tmp_path / channel / "part-00000.tar").write_bytes(b"not a tar archive at all" * 40)
    result = _run(
        tmp_path / "ml", {c: tmp_path / c for c in ("train", "validation")}, "--epochs", "1"
    )
    assert result.returncode == 1
    failure = (tmp_path / "ml" / "output" / "failure").read_text()
    assert "Could not read the channel" in failure


def test_the_entry_point_claims_no_source_for_a_size_it_was_given(
    tmp_path: Path, tiny_photos: Path
) -> None:
    # The host gives a concrete size for auto too: where it came from, the host says.
    from defects.dataset.prepare import prepare

    dataset = prepare(tiny_photos, data_dir=tmp_path / "data")
    channels = {split: dataset.root / split for split in ("train", "validation")}
    result = _run(tmp_path / "ml", channels, "--epochs", "1", "--image_size", "40x24")
    assert result.returncode == 0, result.stderr[-2000:]
    training = next(line for line in result.stdout.splitlines() if line.startswith("Training "))
    assert "; image size 40x24; epochs 1;" in training
    assert "Kept the weights of epoch 1 of 1: ran the 1 epoch asked for." in result.stdout


def test_the_cache_budget_is_shared_by_the_splits(tmp_path: Path, tiny_photos: Path) -> None:
    import json

    from defects.dataset.prepare import prepare
    from defects.training.batches import decoded_bytes
    from defects.training.data import read_channel

    dataset = prepare(tiny_photos, data_dir=tmp_path / "data")
    channels = {split: dataset.root / split for split in ("train", "validation", "test")}
    sizes = {
        split: decoded_bytes(len(read_channel(path)), (256, 256))
        for split, path in channels.items()
    }
    # One MB holds the validation split, not the training split beside it.
    assert sizes["validation"] <= 10**6 < sizes["validation"] + sizes["train"]
    base = tmp_path / "ml"
    result = _run(base, channels, "--epochs", "1", "--image_size", "256", "--cache_mb", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    kept = json.loads((base / "output" / "data" / "metrics.json").read_text())["input"]
    assert kept["cache_budget_mb"] == 1
    assert kept["validation"]["kept"] == "cached"
    assert kept["train"]["kept"] == "decoded copy"
    left = (10**6 - sizes["validation"]) / 1e6
    assert kept["train"]["allowed_mb"] == round(left, 1)
    assert f"the {left:.0f} MB left of the 1 MB budget" in result.stdout
