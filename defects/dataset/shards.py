"""A prepared split as a few tar shards: what ``defects stage`` uploads.

Each split of a prepared dataset is packed into ``part-00000.tar``, ``part-00001.tar``, ...
of about :func:`shard_bytes` each, whose members are the split's ``<class>/<image>`` files.
One object per few hundred images instead of one per image: S3 (and the embedded server,
which spends milliseconds of CPU on every request) takes a handful of large uploads much
faster than a thousand small ones, and SageMaker downloads a channel of a few objects faster
at the start of a job. A dataset of 2 GiB or more, the size from which a SageMaker job
streams its channels (FastFile), has shards of 128 MiB, the size AWS suggests for FastFile
(100-150 MB); a smaller one is cut into about 16 shards (of at least 16 MiB), so that
staging uploads one while it packs the next: 241 MB went up in 1.3 s as 17 shards and in
1.6 s as 4 (README, "Benchmarks"). The entry point reads the shards directly,
each image at its offset (``training/data.py``).

Shards are deterministic (sorted members, fixed times and owners), so the same prepared
dataset always gives the same bytes and the same MD5, and staging it again skips every
object. They are built once per dataset, next to it, and described by ``shards.json``; jobs
that stage the same dataset at once wait for the one packing it (:mod:`.folders`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defects.dataset import folders
from defects.dataset.manifest import SPLITS, PreparedDataset

SHARD_BYTES = 128 * 1024 * 1024
SMALLEST_SHARD_BYTES = 16 * 1024 * 1024
_SHARDS_PER_DATASET = 16
SHARDS_DIR = "shards"
INDEX_FILE = "shards.json"
_FORMAT = 1
# What is packed: (split, shard name, the manifest entries it holds), one per shard.
Plans = list[tuple[str, str, list[dict[str, Any]]]]


@dataclass(frozen=True)
class Shard:
    split: str
    name: str
    path: Path
    md5: str
    bytes: int
    images: int

    @property
    def key(self) -> str:
        """The object's key below the dataset's S3 folder."""
        return f"{self.split}/{self.name}"


def _groups(entries: list[dict[str, Any]], limit: int) -> Iterable[list[dict[str, Any]]]:
    group: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        if group and size + int(entry["bytes"]) > limit:
            yield group
            group, size = [], 0
        group.append(entry)
        size += int(entry["bytes"])
    if group:
        yield group


class _HashingFile:
    """A write-only file that computes the MD5 of what passes through it."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.md5 = hashlib.md5(usedforsecurity=False)

    def write(self, data: bytes) -> int:
        self.md5.update(data)
        return int(self._stream.write(data))

    def tell(self) -> int:
        return int(self._stream.tell())


def _write_tar(target: Path, root: Path, split: str, entries: list[dict[str, Any]]) -> str:
    temporary = target.with_suffix(".tmp")
    with temporary.open("wb") as raw:
        hashing = _HashingFile(raw)
        with tarfile.TarFile(fileobj=hashing, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[arg-type]
            for entry in entries:
                source = root / entry["path"]
                info = tarfile.TarInfo(entry["path"][len(split) + 1 :])
                info.size = source.stat().st_size
                info.mtime = 0
                info.mode = 0o644
                with source.open("rb") as stream:
                    tar.addfile(info, stream)
    os.replace(temporary, target)
    return hashing.md5.hexdigest()


def _current(index: Path, dataset: PreparedDataset, limit: int) -> list[Shard] | None:
    try:
        record = json.loads(index.read_text())
    except (OSError, ValueError):
        return None
    if record.get("format") != _FORMAT or record.get("dataset_id") != dataset.dataset_id:
        return None
    if record.get("shard_bytes") != limit:
        return None
    shards = [
        Shard(
            split=item["split"],
            name=item["name"],
            path=index.parent / item["split"] / item["name"],
            md5=item["md5"],
            bytes=item["bytes"],
            images=item["images"],
        )
        for item in record["shards"]
    ]
    for shard in shards:
        try:
            if shard.path.stat().st_size != shard.bytes:
                return None
        except OSError:
            return None
    return shards


def shard_bytes(dataset_bytes: int) -> int:
    """The size of a dataset's shards: a sixteenth of it, from 16 MiB to 128 MiB."""
    share = dataset_bytes // _SHARDS_PER_DATASET
    return max(SMALLEST_SHARD_BYTES, min(SHARD_BYTES, share))


def open_shards(dataset: PreparedDataset, limit: int | None = None) -> tuple[int, Iterator[Shard]]:
    """How many shards the dataset has, and the shards one by one as they are ready (of
    about ``limit`` bytes each, :func:`shard_bytes` unless given).

    Intact shards from an earlier call are reused; otherwise each is built when the iterator
    reaches it, so that a caller can upload one while the next is packed. A missing prepared
    file raises :class:`FileNotFoundError` here, before anything is built.
    """
    folder = dataset.root / SHARDS_DIR
    files = sorted(dataset.files(), key=lambda entry: str(entry["path"]))
    if limit is None:
        limit = shard_bytes(sum(int(entry["bytes"]) for entry in files))
    existing = _current(folder / INDEX_FILE, dataset, limit)
    if existing is not None:
        return len(existing), iter(existing)
    for entry in files:
        if not (dataset.root / entry["path"]).is_file():
            raise FileNotFoundError(2, "missing", str(dataset.root / entry["path"]))
    plans = [
        (split, f"part-{number:05d}.tar", group)
        for split in SPLITS
        for number, group in enumerate(
            _groups([entry for entry in files if entry["split"] == split], limit)
        )
    ]
    return len(plans), _build(dataset, folder, plans, limit)


def _build(dataset: PreparedDataset, folder: Path, plans: Plans, limit: int) -> Iterator[Shard]:
    # Another job may be packing the same dataset: wait for it, then reuse its shards. The
    # lock is held until the last shard is packed (or this generator is closed).
    with folders.exclusive(folder, "another job is packing the same dataset"):
        existing = _current(folder / INDEX_FILE, dataset, limit)
        if existing is not None:
            yield from existing
            return
        yield from _pack(dataset, folder, plans, limit)


def _pack(dataset: PreparedDataset, folder: Path, plans: Plans, limit: int) -> Iterator[Shard]:
    built: list[Shard] = []
    folders.refuse_links(
        (folder, *(folder / split for split in SPLITS)),
        "packs its shards itself and never writes (or removes old shards) through one",
        "the shards are packed again where it was",
    )
    (folder / INDEX_FILE).unlink(missing_ok=True)
    for split in SPLITS:
        (folder / split).mkdir(parents=True, exist_ok=True)
        for stale in (folder / split).glob("*.tar"):
            stale.unlink()
    for split, name, group in plans:
        path = folder / split / name
        md5 = _write_tar(path, dataset.root, split, group)
        shard = Shard(split, name, path, md5, path.stat().st_size, len(group))
        built.append(shard)
        yield shard
    record = {
        "format": _FORMAT,
        "dataset_id": dataset.dataset_id,
        "shard_bytes": limit,
        "shards": [
            {k: getattr(s, k) for k in ("split", "name", "md5", "bytes", "images")} for s in built
        ],
    }
    index = folder / INDEX_FILE
    temporary = index.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=2))
    os.replace(temporary, index)


def shards_for(dataset: PreparedDataset, limit: int | None = None) -> list[Shard]:
    """The dataset's shards, built on first use and reused while they are intact."""
    return list(open_shards(dataset, limit)[1])
