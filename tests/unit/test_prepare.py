import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defects.dataset.manifest import MANIFEST, SPLITS, load_manifest
from defects.dataset.prepare import prepare
from defects.errors import DataError
from tests.photos import CLASSES
from tests.photos import class_folders as _classes
from tests.photos import class_photos as _dataset
from tests.photos import photo as _photo


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
