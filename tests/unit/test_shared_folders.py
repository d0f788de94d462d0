"""Jobs that share a data folder: draws, preparations and shards are built once, under a
lock, never half-seen or removed by another job; prepared files never reach the source."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from defects.dataset import folders, shards, steps
from defects.dataset.prepare import prepare

WIDTH, HEIGHT = 64, 64


def _synthetic_target(data_dir: Path, per_class: int = 1) -> Path:
    return data_dir / "synthetic" / f"n{per_class}-s0-{WIDTH}x{HEIGHT}"


def test_a_prepared_file_is_a_copy_that_writes_never_reach_the_source(
    tiny_photos: Path, tmp_path: Path
) -> None:
    dataset = prepare(tiny_photos, data_dir=tmp_path)
    entry = next(e for e in dataset.files() if "converted" not in e)
    prepared = dataset.root / entry["path"]
    source = tiny_photos / entry["source"]
    original = source.read_bytes()
    assert prepared.read_bytes() == original
    assert prepared.stat().st_ino != source.stat().st_ino
    with prepared.open("r+b") as stream:
        stream.write(b"overwritten")
    assert source.read_bytes() == original
    assert source.stat().st_nlink == 1


def test_a_job_waits_for_an_identical_draw_and_reuses_it(tmp_path: Path) -> None:
    target = _synthetic_target(tmp_path)
    returned: list[Path] = []
    waiter = threading.Thread(
        target=lambda: returned.append(
            steps.synthesize(per_class=1, width=WIDTH, height=HEIGHT, data_dir=tmp_path)
        )
    )
    with folders.exclusive(target):
        waiter.start()
        time.sleep(0.5)
        assert returned == []  # It waits for the lock instead of removing the draw.
        # What the holder drew meanwhile; the waiter must take it as it is.
        (target / "good").mkdir(parents=True)
        (target / "good" / "drawn-by-the-first-job.png").write_bytes(b"first")
        (target / ".complete").touch()
    waiter.join(timeout=30)
    assert returned == [target]
    assert (target / "good" / "drawn-by-the-first-job.png").read_bytes() == b"first"
    assert sorted(p.name for p in target.iterdir()) == [".complete", "good"]


def test_an_interrupted_draw_is_drawn_again_in_full(tmp_path: Path) -> None:
    target = _synthetic_target(tmp_path)
    (target / "oil").mkdir(parents=True)
    (target / "oil" / "half-written.jpg").write_bytes(b"")
    (target.with_name(target.name + ".partial") / "good").mkdir(parents=True)
    steps.synthesize(per_class=1, width=WIDTH, height=HEIGHT, data_dir=tmp_path)
    drawn = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert drawn == [
        ".complete",
        "good/0001.png",
        "oil/Oil_0001.jpg",
        "scratch/Scr_0001.jpg",
        "stain/Sta_0001.jpg",
    ]
    assert not target.with_name(target.name + ".partial").exists()


def test_three_jobs_preparing_and_packing_the_same_folder_at_once_all_succeed(
    tiny_photos: Path, tmp_path: Path
) -> None:
    results: list[tuple[str, list[str]]] = []
    failures: list[BaseException] = []

    def job() -> None:
        try:
            dataset = prepare(tiny_photos, data_dir=tmp_path)
            packed = shards.shards_for(dataset, limit=60_000)
            results.append((dataset.dataset_id, [s.md5 for s in packed]))
            for shard in packed:
                assert shard.path.stat().st_size == shard.bytes
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below.
            failures.append(error)

    threads = [threading.Thread(target=job) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    assert len(results) == 3
    assert results[0] == results[1] == results[2]
    assert len(results[0][1]) > 3
    assert [p.name for p in (tmp_path / "prepared").iterdir() if not p.name.startswith(".")] == [
        results[0][0]
    ]


def test_a_second_packer_waits_and_reuses_the_first_ones_shards(
    tiny_photos: Path, tmp_path: Path
) -> None:
    dataset = prepare(tiny_photos, data_dir=tmp_path)
    _, first = shards.open_shards(dataset, limit=60_000)
    packing = next(first)  # The first packer now holds the lock.
    count, second = shards.open_shards(dataset, limit=60_000)
    taken: list[shards.Shard] = []
    waiter = threading.Thread(target=lambda: taken.extend(second))
    waiter.start()
    time.sleep(0.5)
    assert taken == []
    rest = list(first)
    waiter.join(timeout=30)
    assert taken == [packing, *rest]
    assert len(taken) == count


@pytest.mark.parametrize("linked", ["data", "data.partial"])
def test_a_data_folder_is_never_built_through_a_symbolic_link(tmp_path: Path, linked: str) -> None:
    from defects.dataset.folders import built_in_place
    from defects.errors import DataError

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "file").write_text("keep")
    (tmp_path / linked).symlink_to(precious)
    with pytest.raises(DataError, match="is a symbolic link"), built_in_place(tmp_path / "data"):
        pass
    assert [p.name for p in precious.iterdir()] == ["file"]
    assert (precious / "file").read_text() == "keep"
