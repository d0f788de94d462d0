"""Tar shards of a prepared dataset: deterministic, complete, reused, rebuilt when damaged."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from defects.dataset import shards
from defects.dataset.manifest import PreparedDataset
from defects.dataset.prepare import prepare
from defects.errors import DataError


@pytest.fixture
def dataset(tiny_photos: Path, tmp_path: Path) -> PreparedDataset:
    return prepare(tiny_photos, data_dir=tmp_path / "data")


def _members(packed: list[shards.Shard], split: str) -> list[str]:
    names = []
    for shard in packed:
        if shard.split == split:
            with tarfile.open(shard.path) as archive:
                names.extend(archive.getnames())
    return names


def test_every_prepared_file_is_in_exactly_one_shard_of_its_split(
    dataset: PreparedDataset,
) -> None:
    packed = shards.shards_for(dataset, limit=30_000)
    assert len(packed) > 3  # Small shards: every split spans several.
    for split in ("train", "validation", "test"):
        expected = sorted(
            f["path"].split("/", 1)[1] for f in dataset.files() if f["split"] == split
        )
        assert sorted(_members(packed, split)) == expected
        assert sum(s.images for s in packed if s.split == split) == len(expected)
    first = next(s for s in packed if s.split == "train")
    with tarfile.open(first.path) as archive:
        member = archive.getmembers()[0]
        contents = archive.extractfile(member).read()  # type: ignore[union-attr]
    assert contents == (dataset.root / "train" / member.name).read_bytes()
    assert member.mtime == 0


def test_shards_are_reused_and_the_same_bytes_when_rebuilt(dataset: PreparedDataset) -> None:
    packed = shards.shards_for(dataset, limit=30_000)
    stamps = [s.path.stat().st_mtime_ns for s in packed]
    again = shards.shards_for(dataset, limit=30_000)
    assert again == packed
    assert [s.path.stat().st_mtime_ns for s in again] == stamps
    for shard in packed:
        shard.path.unlink()
    rebuilt = shards.shards_for(dataset, limit=30_000)
    assert [(s.key, s.md5) for s in rebuilt] == [(s.key, s.md5) for s in packed]


def test_a_damaged_shard_is_rebuilt(dataset: PreparedDataset) -> None:
    packed = shards.shards_for(dataset)
    packed[0].path.write_bytes(b"truncated")
    rebuilt = shards.shards_for(dataset)
    assert rebuilt[0].md5 == packed[0].md5
    assert rebuilt[0].path.stat().st_size == packed[0].bytes


def test_a_missing_prepared_file_is_a_clear_error(dataset: PreparedDataset) -> None:
    from defects.dataset import steps

    first = dataset.files()[0]
    (dataset.root / first["path"]).unlink()
    with pytest.raises(DataError, match="is missing"):
        steps.stage(dataset, store=_NoS3())  # type: ignore[arg-type]


class _NoS3:
    """Fails the test if staging reaches S3 before checking the local files."""

    class settings:  # noqa: N801 - mimics the attribute
        region = "us-east-1"

    bucket = "never"
    s3 = None

    def dataset_uri(self, dataset_id: str) -> object:
        raise AssertionError("staging must check the files before touching S3")


@pytest.mark.parametrize("linked", ["shards", "shards/train"])
def test_shards_are_never_packed_or_removed_through_a_symbolic_link(
    dataset: PreparedDataset, tmp_path: Path, linked: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "part-00000.tar").write_bytes(b"someone else's archive")
    link = dataset.root / linked
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    with pytest.raises(DataError, match="is a symbolic link"):
        shards.shards_for(dataset)
    assert [p.name for p in outside.iterdir()] == ["part-00000.tar"]
    assert (outside / "part-00000.tar").read_bytes() == b"someone else's archive"


def test_shards_are_a_sixteenth_of_the_dataset_from_16_to_128_mib() -> None:
    mib = 1024 * 1024
    assert shards.shard_bytes(10 * mib) == 16 * mib
    assert shards.shard_bytes(241 * 10**6) == 16 * mib
    assert shards.shard_bytes(1024 * mib) == 64 * mib
    # From 2 GiB, the size a SageMaker job streams (FastFile), AWS's suggested size.
    assert shards.shard_bytes(2048 * mib) == 128 * mib
    assert shards.shard_bytes(50 * 1024 * mib) == 128 * mib
