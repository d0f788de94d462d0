import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defects.dataset.manifest import MANIFEST, SPLITS, load_manifest
from defects.dataset.prepare import prepare
from defects.errors import DataError

CLASSES = ("good", "oil", "scratch", "stain")


def _photo(path: Path, seed: int, mode: str = "RGB", size: tuple[int, int] = (48, 32)) -> Path:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    formats = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".webp": "WEBP"}
    fmt = formats.get(path.suffix.lower(), "HEIF" if path.suffix == ".heic" else "TIFF")
    if fmt == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    image.save(path, format=fmt)
    return path


def _dataset(root: Path, per_class: int = 6, folder_names: dict[str, str] | None = None) -> Path:
    folder_names = folder_names or {}
    for class_index, name in enumerate(CLASSES):
        folder = root / folder_names.get(name, name)
        for i in range(per_class):
            suffix = ".png" if name == "good" else ".jpg"
            _photo(folder / f"{name}_{i:03d}{suffix}", seed=class_index * 100 + i)
    return root


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_every_class_lands_in_every_split(tmp_path: Path) -> None:
    dataset = prepare(_dataset(tmp_path / "src"), data_dir=tmp_path / "data")
    for split in SPLITS:
        assert all(dataset.counts[split][name] >= 1 for name in CLASSES), split
    assert sum(sum(c.values()) for c in dataset.counts.values()) == 24


def test_split_files_are_laid_out_by_split_and_class(tmp_path: Path) -> None:
    dataset = prepare(_dataset(tmp_path / "src"), data_dir=tmp_path / "data")
    for entry in dataset.files():
        path = dataset.root / entry["path"]
        assert path.is_file()
        assert path.parts[-3:-1] == (entry["split"], entry["class"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]


def test_same_input_gives_the_same_split(tmp_path: Path) -> None:
    source = _dataset(tmp_path / "src")
    first = prepare(source, tmp_path / "a")
    second = prepare(source, tmp_path / "b")
    assert first.dataset_id == second.dataset_id
    assert [f["path"] for f in first.files()] == [f["path"] for f in second.files()]


def test_another_seed_gives_another_split(tmp_path: Path) -> None:
    source = _dataset(tmp_path / "src", per_class=12)
    first = prepare(source, tmp_path / "a", seed=0)
    second = prepare(source, tmp_path / "b", seed=1)
    assert [f["path"] for f in first.files()] != [f["path"] for f in second.files()]


def test_source_is_never_modified(tmp_path: Path) -> None:
    source = _dataset(tmp_path / "src")
    (source / "oil" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    before = _tree_digest(source)
    prepare(source, data_dir=tmp_path / "data")
    assert _tree_digest(source) == before


def test_bad_files_are_skipped_with_a_reason(tmp_path: Path) -> None:
    source = _dataset(tmp_path / "src")
    (source / "oil" / "empty.jpg").write_bytes(b"")
    (source / "oil" / "notes.txt").write_text("hello")
    (source / "scratch" / "text.png").write_text("this is not a picture")
    good = _photo(tmp_path / "whole.jpg", seed=999).read_bytes()
    (source / "stain" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    dataset = prepare(source, data_dir=tmp_path / "data")
    reasons = {item["source"]: item["reason"] for item in dataset.skipped}
    assert reasons["oil/empty.jpg"] == "empty file (0 bytes)"
    assert reasons["oil/notes.txt"] == "unsupported file type .txt"
    assert reasons["scratch/text.png"] == (
        "not an image (no JPEG, PNG, BMP, WebP, TIFF or HEIC content)"
    )
    assert reasons["stain/truncated.jpg"].startswith("unreadable or truncated image")
    assert sum(sum(c.values()) for c in dataset.counts.values()) == 24
    manifest = json.loads((dataset.root / MANIFEST).read_text())
    assert len(manifest["skipped"]) == 4


@pytest.mark.parametrize("mode", ["RGBA", "L", "I;16", "P"])
def test_other_image_modes_are_converted_to_rgb(tmp_path: Path, mode: str) -> None:
    source = _dataset(tmp_path / "src")
    _photo(source / "good" / "odd.png", seed=7, mode=mode)
    dataset = prepare(source, data_dir=tmp_path / "data")
    entry = next(f for f in dataset.files() if f["source"] == "good/odd.png")
    assert "converted" in entry
    with Image.open(dataset.root / entry["path"]) as image:
        assert image.mode == "RGB"


def test_bmp_is_converted_to_png(tmp_path: Path) -> None:
    source = _dataset(tmp_path / "src")
    _photo(source / "oil" / "SHOT.BMP", seed=8)
    dataset = prepare(source, data_dir=tmp_path / "data")
    entry = next(f for f in dataset.files() if f["source"] == "oil/SHOT.BMP")
    assert entry["path"].endswith("/SHOT.BMP.png")
    with Image.open(dataset.root / entry["path"]) as image:
        assert image.format == "PNG"
    # The converted bytes waited in a folder of their own, on disk, and it is gone.
    left = sorted(p.name for p in (tmp_path / "data" / "prepared").iterdir())
    assert left == [f".{dataset.dataset_id}.lock", dataset.dataset_id]


@pytest.mark.parametrize(
    ("name", "mode", "conversion"),
    [
        ("phone.webp", "RGB", "WEBP RGB to RGB PNG"),
        ("camera.tif", "I;16", "16-bit I;16 to 8-bit RGB PNG"),
        ("scan.TIFF", "CMYK", "TIFF CMYK to RGB PNG"),
        ("IMG_0042.heic", "RGB", "HEIF RGB to RGB PNG"),
    ],
)
def test_webp_and_tiff_are_converted_to_png(
    tmp_path: Path, name: str, mode: str, conversion: str
) -> None:
    source = _dataset(tmp_path / "src")
    original = _photo(source / "stain" / name, seed=9, mode=mode, size=(60, 40))
    dataset = prepare(source, data_dir=tmp_path / "data")
    entry = next(f for f in dataset.files() if f["source"] == f"stain/{name}")
    assert entry["converted"] == conversion
    assert entry["path"].endswith(f"/{name}.png")
    with Image.open(dataset.root / entry["path"]) as image, Image.open(original) as before:
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (60, 40))
        if mode == "RGB":  # lossy WebP and HEIC, so close rather than equal
            difference = np.abs(np.asarray(image, int) - np.asarray(before.convert("RGB"), int))
            assert difference.mean() < 8


def test_photos_of_one_name_in_several_formats_are_all_kept(tmp_path: Path) -> None:
    source = _dataset(tmp_path / "src")
    formats = ((".png", "I;16"), (".bmp", "RGB"), (".webp", "RGB"), (".tif", "RGB"))
    for seed, (suffix, mode) in enumerate(formats, 20):
        _photo(source / "scratch" / f"shot{suffix}", seed=seed, mode=mode)
    dataset = prepare(source, data_dir=tmp_path / "data")
    paths = sorted(
        Path(f["path"]).name for f in dataset.files() if f["source"].startswith("scratch/shot")
    )
    assert paths == ["shot.bmp.png", "shot.png", "shot.tif.png", "shot.webp.png"]


def test_an_animated_file_keeps_its_first_frame_and_says_so(tmp_path: Path) -> None:
    source = _dataset(tmp_path / "src")
    frames = [Image.new("RGB", (40, 30), (value, 0, 0)) for value in (250, 10, 120)]
    frames[0].save(source / "oil" / "clip.webp", save_all=True, append_images=frames[1:])
    dataset = prepare(source, data_dir=tmp_path / "data")
    entry = next(f for f in dataset.files() if f["source"] == "oil/clip.webp")
    assert entry["converted"].endswith("(the first of 3 frames)")
    with Image.open(dataset.root / entry["path"]) as image:
        assert image.getpixel((20, 15))[0] > 200


def test_a_float_tiff_is_skipped_with_a_reason(tmp_path: Path) -> None:
    source = _dataset(tmp_path / "src")
    Image.new("F", (40, 30), 0.5).save(source / "good" / "depth.tiff")
    dataset = prepare(source, data_dir=tmp_path / "data")
    reasons = {item["source"]: item["reason"] for item in dataset.skipped}
    assert reasons == {"good/depth.tiff": "unsupported pixel mode F (save it as 8- or 16-bit)"}


def test_mask_folders_are_ignored_and_reported(tmp_path: Path) -> None:
    source = _dataset(tmp_path / "src")
    _photo(source / "ground_truth_1" / "Oil_0001.png", seed=5)
    _photo(source / "ground_truth_2" / "Sta_0001.png", seed=6)
    dataset = prepare(source, data_dir=tmp_path / "data")
    assert dataset.manifest["ignored_folders"] == ["ground_truth_1", "ground_truth_2"]
    assert not any("ground_truth" in f["source"] for f in dataset.files())


def test_class_folders_in_any_case_one_level_down(tmp_path: Path) -> None:
    names = {"good": "Good", "oil": "OIL", "scratch": "Scratch", "stain": "stain"}
    _dataset(tmp_path / "src" / "Mobile Phone Defect", folder_names=names)
    dataset = prepare(tmp_path / "src", data_dir=tmp_path / "data")
    assert set(dataset.counts["train"]) == set(CLASSES)


def test_nested_sub_folders_inside_a_class_are_read(tmp_path: Path) -> None:
    source = _dataset(tmp_path / "src")
    _photo(source / "oil" / "batch2" / "x.JPEG", seed=11)
    dataset = prepare(source, data_dir=tmp_path / "data")
    assert any(f["source"] == "oil/batch2/x.JPEG" for f in dataset.files())


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        prepare(tmp_path / "nope", data_dir=tmp_path / "data")
    assert "does not exist" in caught.value.message


@pytest.mark.parametrize("name", ["photos.zip", "photos.tar.gz", "Photos.TGZ"])
def test_an_archive_is_a_clear_error_with_how_to_unpack_it(tmp_path: Path, name: str) -> None:
    archive = tmp_path / name
    archive.write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError) as caught:
        prepare(archive, data_dir=tmp_path / "data")
    assert caught.value.message == f"{archive} is an archive; the data must be a folder."
    assert "Unpack it first" in (caught.value.hint or "")
    assert not (tmp_path / "data").exists()


def test_missing_class_folder_is_named(tmp_path: Path) -> None:
    source = _dataset(tmp_path / "src")
    for path in (source / "stain").iterdir():
        path.unlink()
    (source / "stain").rmdir()
    with pytest.raises(DataError) as caught:
        prepare(source, classes=CLASSES, data_dir=tmp_path / "data")
    assert "stain" in caught.value.message


def _classes(root: Path, names: tuple[str, ...], per_class: int = 4) -> Path:
    for index, name in enumerate(names):
        for i in range(per_class):
            _photo(root / name / f"{i}.jpg", seed=index * 10 + i)
    return root


def test_without_classes_they_are_the_sources_folders(tmp_path: Path) -> None:
    source = _classes(tmp_path / "src", ("ok", "dent", "Crack"))
    (source / "empty").mkdir()
    (source / "__MACOSX" / "ok").mkdir(parents=True)
    (source / "__MACOSX" / "ok" / "._0.jpg").write_bytes(b"resource fork")
    dataset = prepare(source, data_dir=tmp_path / "data")
    assert dataset.manifest["classes"] == ["Crack", "dent", "ok"]
    assert dataset.counts["train"] == {"Crack": 2, "dent": 2, "ok": 2}
    assert "empty" in dataset.manifest["ignored_folders"]
    assert "classes Crack, dent, ok" in dataset.summary()


def test_without_classes_an_archives_top_folder_is_looked_into(tmp_path: Path) -> None:
    source = _classes(tmp_path / "src" / "cells-2024", ("functional", "defective"))
    dataset = prepare(tmp_path / "src", data_dir=tmp_path / "data")
    assert dataset.manifest["classes"] == ["defective", "functional"]
    assert {f["source"].split("/")[0] for f in dataset.files()} == {"defective", "functional"}
    assert source.is_dir()


def test_without_classes_the_four_defaults_win_over_other_folders(tmp_path: Path) -> None:
    source = _dataset(tmp_path / "src")
    _photo(source / "unsorted" / "x.jpg", seed=3)
    dataset = prepare(source, data_dir=tmp_path / "data")
    assert dataset.manifest["classes"] == list(CLASSES)
    assert dataset.manifest["ignored_folders"] == ["unsorted"]


@pytest.mark.parametrize("folders", [(), ("only",)])
@pytest.mark.parametrize("loose_file", [True, False])
def test_fewer_than_two_class_folders_is_a_clear_error(
    tmp_path: Path, folders: tuple[str, ...], loose_file: bool
) -> None:
    source = _classes(tmp_path / "src", folders)
    source.mkdir(exist_ok=True)
    if loose_file:
        (source / "loose.jpg").write_bytes(b"")
    with pytest.raises(DataError) as caught:
        prepare(source, data_dir=tmp_path / "data")
    assert "at least two class folders" in caught.value.message
    assert f"found: {', '.join(folders) or 'none'}" in caught.value.message
    assert "--classes" in (caught.value.hint or "")


def test_empty_class_is_a_clear_error(tmp_path: Path) -> None:
    source = _dataset(tmp_path / "src")
    for path in (source / "good").iterdir():
        path.unlink()
    with pytest.raises(DataError) as caught:
        prepare(source, data_dir=tmp_path / "data")
    assert "No usable images for class(es) good" in caught.value.message


def test_too_few_images_for_the_split_is_a_clear_error(tmp_path: Path) -> None:
    source = _dataset(tmp_path / "src")
    for path in sorted((source / "good").iterdir())[2:]:
        path.unlink()
    with pytest.raises(DataError) as caught:
        prepare(source, data_dir=tmp_path / "data")
    assert "'good' has 2 usable image(s)" in caught.value.message


def test_other_class_lists_are_supported(tmp_path: Path) -> None:
    for index, name in enumerate(("ok", "dent")):
        for i in range(4):
            _photo(tmp_path / "src" / name / f"{i}.jpg", seed=index * 10 + i)
    dataset = prepare(tmp_path / "src", classes=("ok", "dent"), data_dir=tmp_path / "data")
    assert dataset.manifest["classes"] == ["ok", "dent"]


def test_existing_output_with_another_dataset_is_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DataError):
        prepare(_dataset(tmp_path / "src"), out)
    assert (out / "keep.txt").read_text() == "mine"


def test_prepared_folder_is_recognised(tmp_path: Path) -> None:
    dataset = prepare(_dataset(tmp_path / "src"), data_dir=tmp_path / "data")
    again = load_manifest(dataset.root)
    assert again is not None and again.dataset_id == dataset.dataset_id


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
