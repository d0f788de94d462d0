"""A split streamed from its files gives the batches the same split cached in memory gives,
epoch after epoch; a channel is an index of its files, never their images in memory."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")

from defects.training import batches as batching  # noqa: E402
from defects.training import data  # noqa: E402

CLASSES = ("dark", "light")


def _png(level: int, index: int) -> bytes:
    pixels = np.full((30, 40, 3), level, np.uint8)
    pixels[index % 20 : index % 20 + 6, 5:15] = 255 - level  # A mark where each image differs.
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("folders")
    for label, name in enumerate(CLASSES):
        (root / name).mkdir()
        for index in range(9):
            (root / name / f"{index:02d}.png").write_bytes(_png(40 + 160 * label, index))
    return root


@pytest.fixture(scope="module")
def shards(folders: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same images in three tar shards, as staging packs them."""
    root = tmp_path_factory.mktemp("shards")
    files = sorted(folders.rglob("*.png"))
    for number in range(3):
        with tarfile.open(root / f"part-{number:05d}.tar", "w") as tar:
            for path in files[number::3]:
                tar.add(path, arcname=path.relative_to(folders).as_posix())
    return root


def _epochs(batches: batching.Batches) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(images.numpy(), labels.numpy()) for images, labels in batches.dataset]


@pytest.mark.parametrize("form", ["folders", "shards"])
@pytest.mark.parametrize("augmented", [False, True])
@pytest.mark.parametrize("copy", [False, True], ids=["decoded-every-epoch", "decoded-copy"])
def test_streamed_and_cached_batches_are_the_same_for_the_same_seed_and_epochs(
    form: str, augmented: bool, copy: bool, folders: Path, shards: Path, tmp_path: Path
) -> None:
    channel = data.read_channel(folders if form == "folders" else shards)
    settings = {"shuffle": True, "seed": 11, "augmented": augmented, "epochs": range(1, 4)}
    cached = batching.channel_batches(channel, (24, 32), 5, 10**9, **settings)
    spill = tmp_path / "cache" if copy else None
    streamed = batching.channel_batches(channel, (24, 32), 5, 0, spill=spill, **settings)
    assert cached.cached and not streamed.cached
    assert streamed.from_copy is copy
    copies = list((tmp_path / "cache").glob("decoded-*"))
    assert len(copies) == (1 if copy else 0)
    if copy:
        # A file an image, and the mark that the copy is whole.
        assert len(list(copies[0].glob("*.u8"))) == 18 and (copies[0] / ".complete").is_file()
    first, second = _epochs(cached), _epochs(streamed)
    assert len(first) == len(second) == 3 * 4  # Three epochs of 18 images in batches of 5.
    for (images, labels), (other_images, other_labels) in zip(first, second, strict=True):
        np.testing.assert_array_equal(labels, other_labels)
        np.testing.assert_array_equal(images, other_images)


def test_without_room_on_the_disk_each_epoch_decodes_again(
    folders: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1, 1, 1))  # type: ignore[attr-defined]
    channel = data.read_channel(folders)
    streamed = batching.channel_batches(channel, (24, 32), 5, 0, spill=tmp_path / "cache")
    assert not streamed.cached and not streamed.from_copy
    assert "decoded every epoch" in streamed.describe(0)
    assert streamed.record() == {"kept": "decoded", "decoded_mb": 0.0, "allowed_mb": 0.0}


def test_validation_batches_stream_in_file_order_as_they_cache(shards: Path) -> None:
    channel = data.read_channel(shards)
    cached = _epochs(batching.channel_batches(channel, (24, 32), 4, 10**9))
    streamed = _epochs(batching.channel_batches(channel, (24, 32), 4, 0))
    labels = np.concatenate([batch_labels for _, batch_labels in streamed])
    assert labels.tolist() == [0] * 9 + [1] * 9
    for (images, _), (other, _) in zip(cached, streamed, strict=True):
        np.testing.assert_array_equal(images, other)


def test_a_sharded_channel_holds_an_index_and_reads_each_image_where_it_lies(
    folders: Path, shards: Path
) -> None:
    channel = data.read_channel(shards)
    assert channel.class_names == list(CLASSES)
    assert len(channel) == 18 and not channel.whole_files
    assert {Path(path).name for path in channel.files} == {
        "part-00000.tar",
        "part-00001.tar",
        "part-00002.tar",
    }
    # Every image is the very file it was packed from.
    originals = sorted(folders.rglob("*.png"))
    assert sorted(channel.read(index) for index in range(18)) == sorted(
        path.read_bytes() for path in originals
    )


def test_the_decision_follows_the_budget(folders: Path) -> None:
    channel = data.read_channel(folders)
    size = batching.decoded_bytes(len(channel), (24, 32))
    assert size == 18 * 24 * 32 * 3
    assert batching.channel_batches(channel, (24, 32), 4, size).cached
    assert not batching.channel_batches(channel, (24, 32), 4, size - 1).cached
