import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from defects.dataset.synth import CLASS_NAMES, SynthReport, _image_rng, _render, synthesize

# A small 16:9 size keeps the file-writing tests fast.
WIDTH, HEIGHT = 160, 90


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _scene(cls: str, index: int, *, defects: bool) -> tuple[np.ndarray, np.ndarray]:
    render = _render(_image_rng(3, CLASS_NAMES.index(cls), index), cls, 640, 360, defects=defects)
    return render.planes.astype(np.int16), render.screen


def test_class_names_match_the_public_dataset() -> None:
    assert CLASS_NAMES == ("good", "oil", "scratch", "stain")


def test_writes_the_kaggle_layout_and_file_names(tmp_path: Path) -> None:
    synthesize(tmp_path / "out", per_class=2, width=WIDTH, height=HEIGHT)
    assert sorted(_files(tmp_path / "out")) == [
        "good/0001.png",
        "good/0002.png",
        "oil/Oil_0001.jpg",
        "oil/Oil_0002.jpg",
        "scratch/Scr_0001.jpg",
        "scratch/Scr_0002.jpg",
        "stain/Sta_0001.jpg",
        "stain/Sta_0002.jpg",
    ]


def test_report_describes_what_was_written(tmp_path: Path) -> None:
    report = synthesize(tmp_path / "out", per_class=3, width=WIDTH, height=HEIGHT)
    assert report == SynthReport(
        out_dir=tmp_path / "out",
        counts={"good": 3, "oil": 3, "scratch": 3, "stain": 3},
        width=WIDTH,
        height=HEIGHT,
    )


def test_good_photos_are_png_and_defect_photos_are_jpeg_of_the_requested_size(
    tmp_path: Path,
) -> None:
    synthesize(tmp_path / "out", per_class=1, width=WIDTH, height=HEIGHT)
    formats = {}
    for cls in CLASS_NAMES:
        (path,) = (tmp_path / "out" / cls).iterdir()
        with Image.open(path) as image:
            formats[cls] = (image.format, image.mode, image.size)
    assert formats == {
        "good": ("PNG", "RGB", (WIDTH, HEIGHT)),
        "oil": ("JPEG", "RGB", (WIDTH, HEIGHT)),
        "scratch": ("JPEG", "RGB", (WIDTH, HEIGHT)),
        "stain": ("JPEG", "RGB", (WIDTH, HEIGHT)),
    }


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    synthesize(tmp_path / "a", per_class=2, seed=7, width=WIDTH, height=HEIGHT)
    synthesize(tmp_path / "b", per_class=2, seed=7, width=WIDTH, height=HEIGHT)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_different_seed_changes_every_file(tmp_path: Path) -> None:
    synthesize(tmp_path / "a", per_class=2, seed=7, width=WIDTH, height=HEIGHT)
    synthesize(tmp_path / "b", per_class=2, seed=8, width=WIDTH, height=HEIGHT)
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] == second[name]] == []


def test_an_image_does_not_depend_on_how_many_are_written(tmp_path: Path) -> None:
    synthesize(tmp_path / "few", per_class=1, seed=5, width=WIDTH, height=HEIGHT)
    synthesize(tmp_path / "more", per_class=3, seed=5, width=WIDTH, height=HEIGHT)
    few, more = _files(tmp_path / "few"), _files(tmp_path / "more")
    assert {name: more[name] for name in few} == few


def test_progress_is_reported_after_every_image(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    synthesize(
        tmp_path / "out",
        per_class=2,
        width=WIDTH,
        height=HEIGHT,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(done, 8) for done in range(1, 9)]


def test_an_existing_empty_directory_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    report = synthesize(tmp_path / "out", per_class=1, width=WIDTH, height=HEIGHT)
    assert report.counts == {"good": 1, "oil": 1, "scratch": 1, "stain": 1}


def test_refuses_a_non_empty_directory_and_leaves_it_alone(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not empty"):
        synthesize(tmp_path / "out", per_class=1, width=WIDTH, height=HEIGHT)
    assert _files(tmp_path / "out") == {"notes.txt": b"keep me"}


@pytest.mark.parametrize("per_class", [0, -1])
def test_refuses_fewer_than_one_image_per_class(tmp_path: Path, per_class: int) -> None:
    with pytest.raises(ValueError, match="per_class must be at least 1"):
        synthesize(tmp_path / "out", per_class=per_class)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("width", "height"), [(63, 64), (64, 63)])
def test_refuses_images_smaller_than_64_pixels(tmp_path: Path, width: int, height: int) -> None:
    with pytest.raises(ValueError, match="at least 64x64"):
        synthesize(tmp_path / "out", per_class=1, width=width, height=height)


def test_the_smallest_allowed_size_works(tmp_path: Path) -> None:
    synthesize(tmp_path / "out", per_class=1, width=64, height=64)
    with Image.open(tmp_path / "out" / "scratch" / "Scr_0001.jpg") as image:
        assert image.size == (64, 64)


def test_good_photos_are_drawn_without_defects() -> None:
    with_defects, _ = _scene("good", 1, defects=True)
    without, _ = _scene("good", 1, defects=False)
    assert np.array_equal(with_defects, without)


@pytest.mark.parametrize("cls", ["oil", "scratch", "stain"])
@pytest.mark.parametrize("index", [1, 2, 3])
def test_a_defect_changes_pixels_on_the_screen_only(cls: str, index: int) -> None:
    with_defect, screen = _scene(cls, index, defects=True)
    without, _ = _scene(cls, index, defects=False)
    changed = np.abs(with_defect - without).max(axis=0)
    assert np.count_nonzero(changed >= 16) >= 12
    assert changed[screen == 0.0].max() == 0


@pytest.mark.parametrize("cls", ["oil", "scratch", "stain"])
@pytest.mark.parametrize("index", [1, 2, 3])
def test_a_defect_stays_visible_at_the_model_input_size(cls: str, index: int) -> None:
    # The model sees the whole photo resized to 128x128.
    def small(planes: np.ndarray) -> np.ndarray:
        image = Image.fromarray(np.ascontiguousarray(planes.astype(np.uint8).transpose(1, 2, 0)))
        resized = image.resize((128, 128), Image.Resampling.BILINEAR, reducing_gap=None)
        return np.asarray(resized, dtype=np.int16)

    with_defect, _ = _scene(cls, index, defects=True)
    without, _ = _scene(cls, index, defects=False)
    assert np.abs(small(with_defect) - small(without)).max() >= 10


def test_the_log_names_the_folder_the_photos_end_in(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from defects.dataset import steps

    with caplog.at_level(logging.INFO, logger="defects"):
        folder = steps.synthesize(per_class=1, width=64, height=64, data_dir=tmp_path)
    assert folder.is_dir()
    assert f"Drew 4 synthetic photos (64x64) in {folder}." in caplog.messages
    assert ".partial" not in caplog.text
