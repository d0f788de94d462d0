"""prepare on a source divided into split folders, and on copies of one photo."""

import hashlib
from pathlib import Path

import pytest

from defects.dataset.manifest import SPLITS
from defects.dataset.prepare import prepare
from defects.errors import DataError
from tests.photos import CLASSES
from tests.photos import class_folders as _classes
from tests.photos import class_photos as _dataset
from tests.photos import photo as _photo


def _divided(root: Path, splits: dict[str, int], names: tuple[str, ...] = ("ok", "dent")) -> Path:
    """A source divided into split folders, each with the class folders inside."""
    for split_index, (folder, per_class) in enumerate(splits.items()):
        for class_index, name in enumerate(names):
            for i in range(per_class):
                seed = 1000 * split_index + 100 * class_index + i
                _photo(root / folder / name / f"{i}.jpg", seed=seed)
    return root


def test_a_source_divided_into_train_and_test_keeps_its_test_split(tmp_path: Path) -> None:
    source = _divided(tmp_path / "src", {"train": 10, "test": 3})
    dataset = prepare(source, data_dir=tmp_path / "data")
    assert dataset.manifest["classes"] == ["dent", "ok"]
    assert dataset.manifest["given_splits"] == {"train": "train", "test": "test"}
    by_split = {
        split: {f["source"] for f in dataset.files() if f["split"] == split} for split in SPLITS
    }
    assert by_split["test"] == {f"test/{c}/{i}.jpg" for c in ("ok", "dent") for i in range(3)}
    # Validation is taken from train, never from test.
    assert all(source.startswith("train/") for source in by_split["validation"])
    assert dataset.counts["validation"] == {"dent": 2, "ok": 2}
    assert dataset.counts["train"] == {"dent": 8, "ok": 8}
    assert (dataset.root / "test" / "ok" / "0.jpg").is_file()
    assert "the source's own splits kept (train/, test/), validation taken from train" in (
        " ".join(dataset.summary().split())
    )


def test_split_folders_of_other_names_and_cases_one_level_down(tmp_path: Path) -> None:
    _divided(tmp_path / "src" / "cells", {"Training": 6, "valid": 2, "Testing": 2})
    dataset = prepare(tmp_path / "src", data_dir=tmp_path / "data")
    assert dataset.manifest["given_splits"] == {
        "train": "Training",
        "validation": "valid",
        "test": "Testing",
    }
    assert dataset.counts == {
        "train": {"dent": 6, "ok": 6},
        "validation": {"dent": 2, "ok": 2},
        "test": {"dent": 2, "ok": 2},
    }


def test_folders_named_train_and_test_that_hold_images_are_classes(tmp_path: Path) -> None:
    source = _classes(tmp_path / "src", ("train", "test"))
    dataset = prepare(source, data_dir=tmp_path / "data")
    assert dataset.manifest["classes"] == ["test", "train"]
    assert dataset.manifest["given_splits"] is None


def test_a_class_missing_from_a_split_folder_is_named(tmp_path: Path) -> None:
    source = _divided(tmp_path / "src", {"train": 6, "test": 2})
    for photo in (source / "test" / "dent").iterdir():
        photo.unlink()
    (source / "test" / "dent").rmdir()
    with pytest.raises(DataError, match="No folder for class\\(es\\) dent"):
        prepare(source, data_dir=tmp_path / "data")


def test_two_folders_for_one_split_are_refused(tmp_path: Path) -> None:
    source = _divided(tmp_path / "src", {"train": 4, "val": 1, "validation": 1})
    with pytest.raises(DataError, match="are the validation split"):
        prepare(source, data_dir=tmp_path / "data")


def test_other_folders_beside_the_splits_are_ignored_and_reported(tmp_path: Path) -> None:
    source = _divided(tmp_path / "src", {"train": 6, "test": 2})
    _photo(source / "masks" / "ok" / "0.png", seed=7)
    dataset = prepare(source, data_dir=tmp_path / "data")
    assert dataset.manifest["given_splits"] == {"train": "train", "test": "test"}
    assert dataset.manifest["ignored_folders"] == ["masks"]
    assert not any(f["source"].startswith("masks/") for f in dataset.files())


def test_a_copy_of_a_photo_is_kept_once_and_the_others_are_reported(tmp_path: Path) -> None:
    source = _dataset(tmp_path / "src")
    original = source / "oil" / "oil_000.jpg"
    (source / "oil" / "oil_000 (1).jpg").write_bytes(original.read_bytes())
    (source / "oil" / "again").mkdir()
    (source / "oil" / "again" / "same.jpg").write_bytes(original.read_bytes())
    dataset = prepare(source, data_dir=tmp_path / "data")
    assert [f["source"] for f in dataset.files() if f["sha256"] == _sha(original)] == [
        "oil/oil_000.jpg"
    ]
    reasons = {s["source"]: s["reason"] for s in dataset.skipped}
    assert reasons == {
        "oil/oil_000 (1).jpg": "a copy of oil/oil_000.jpg",
        "oil/again/same.jpg": "a copy of oil/oil_000.jpg",
    }


def test_a_photo_in_two_classes_is_skipped_everywhere(tmp_path: Path) -> None:
    source = _dataset(tmp_path / "src")
    (source / "good" / "which.jpg").write_bytes((source / "stain" / "stain_002.jpg").read_bytes())
    dataset = prepare(source, data_dir=tmp_path / "data")
    assert not any(
        f["source"] in ("good/which.jpg", "stain/stain_002.jpg") for f in dataset.files()
    )
    reasons = {s["source"]: s["reason"] for s in dataset.skipped}
    assert reasons["good/which.jpg"] == (
        "the same image is in the classes good and stain (stain/stain_002.jpg)"
    )
    assert reasons["stain/stain_002.jpg"].endswith("(good/which.jpg)")


def test_a_test_photo_that_is_also_in_train_is_left_out_of_the_test_split(tmp_path: Path) -> None:
    source = tmp_path / "src"
    _dataset(source / "train")
    for class_index, name in enumerate(CLASSES):
        for i in range(3):
            _photo(source / "test" / name / f"{name}_{i:03d}.jpg", seed=1000 + 10 * class_index + i)
    leaked = source / "test" / "scratch" / "scratch_001.jpg"
    leaked.write_bytes((source / "train" / "scratch" / "scratch_004.jpg").read_bytes())
    dataset = prepare(source, data_dir=tmp_path / "data")
    kept = {f["source"]: f["split"] for f in dataset.files()}
    assert "test/scratch/scratch_001.jpg" not in kept
    assert kept["train/scratch/scratch_004.jpg"] in ("train", "validation")
    reasons = {s["source"]: s["reason"] for s in dataset.skipped}
    assert reasons["test/scratch/scratch_001.jpg"] == "a copy of train/scratch/scratch_004.jpg"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_split_left_empty_by_copies_says_what_was_skipped(tmp_path: Path) -> None:
    source = tmp_path / "src"
    _dataset(source / "train")
    _dataset(source / "test", per_class=2)  # The same seeds: copies of train photos.
    with pytest.raises(DataError, match="no usable image for the test split") as raised:
        prepare(source, data_dir=tmp_path / "data")
    assert "8 file(s) were skipped, e.g. test/" in raised.value.message
    assert ": a copy of train/" in raised.value.message
