"""Unpacking archives: only files and folders, only inside the destination, within limits,
all or nothing."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path
from typing import Literal

import pytest

from defects.backends.artifacts import pack
from defects.errors import DataError, UnsafeArchive
from defects.storage.archives import MAX_BYTES, MAX_MEMBERS, safe_extract

Member = tuple[tarfile.TarInfo, bytes | None]

JOB_FILES = ("model", "model.tar.gz", "output.tar.gz", "job.json", "job.log")


def _file(name: str, contents: bytes = b"contents") -> Member:
    info = tarfile.TarInfo(name)
    info.size = len(contents)
    return info, contents


def _folder(name: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, None


def _special(name: str, kind: bytes, linkname: str = "") -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def _archive(path: Path, members: list[Member], mode: Literal["w", "w:gz"] = "w:gz") -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for info, contents in members:
            tar.addfile(info, None if contents is None else io.BytesIO(contents))
    path.write_bytes(buffer.getvalue())
    return path


def _tree(root: Path) -> dict[str, bytes | None]:
    """Every path below ``root`` (without following links) with a file's contents."""
    tree: dict[str, bytes | None] = {}
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = Path(folder) / name
            regular = path.is_file() and not path.is_symlink()
            tree[str(path.relative_to(root))] = path.read_bytes() if regular else None
    return tree


def _refused(
    archive: Path, destination: Path, max_bytes: int = MAX_BYTES, max_members: int = MAX_MEMBERS
) -> str:
    with pytest.raises(UnsafeArchive) as raised:
        safe_extract(archive, destination, max_bytes=max_bytes, max_members=max_members)
    return str(raised.value)


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    """A fetched job's folder, as output.tar.gz is unpacked into it."""
    job = tmp_path / "job"
    (job / "model").mkdir(parents=True)
    (job / "model" / "class_names.json").write_text('["good", "oil"]')
    (job / "model.tar.gz").write_bytes(b"the job's model archive")
    (job / "history.json").write_text("{}")
    return job


def test_a_good_archive_extracts_exactly_its_files(tmp_path: Path) -> None:
    members = [
        _folder("."),
        _folder("./variables"),
        _file("./variables/data", b"weights"),
        _file("model.keras", b"keras"),
        _file("empty.txt", b""),
    ]
    archive = _archive(tmp_path / "model.tar.gz", members)
    destination = tmp_path / "dest"
    written = safe_extract(archive, destination)
    assert written == [destination / p for p in ("variables/data", "model.keras", "empty.txt")]
    assert _tree(destination) == {
        "variables": None,
        "variables/data": b"weights",
        "model.keras": b"keras",
        "empty.txt": b"",
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dest", "model.tar.gz"]


def test_an_archive_packed_by_the_backends_extracts_to_the_same_tree(tmp_path: Path) -> None:
    model = tmp_path / "model"
    (model / "saved_model" / "variables").mkdir(parents=True)
    (model / "saved_model" / "variables" / "variables.index").write_bytes(b"index")
    (model / "saved_model" / "saved_model.pb").write_bytes(b"graph")
    (model / "model.keras").write_bytes(b"keras")
    archive = pack(model, tmp_path / "model.tar.gz")
    safe_extract(archive, tmp_path / "dest")
    assert _tree(tmp_path / "dest") == _tree(model)


def test_a_plain_tar_extracts_like_a_gzipped_one(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "model.tar", [_file("model.keras", b"keras")], mode="w")
    safe_extract(archive, tmp_path / "dest")
    assert _tree(tmp_path / "dest") == {"model.keras": b"keras"}


def test_modes_come_from_the_tool_not_the_archive(tmp_path: Path) -> None:
    program, folder = _file("bin/run", b"#!/bin/sh"), _folder("bin")
    program[0].mode, folder[0].mode = 0o4777, 0o777
    safe_extract(_archive(tmp_path / "a.tar.gz", [folder, program]), tmp_path / "dest")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "dest" / "bin").stat().st_mode) == 0o755 & ~umask
    assert stat.S_IMODE((tmp_path / "dest" / "bin" / "run").stat().st_mode) == 0o644 & ~umask


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../x", "has a '..' component"),
        ("sub/../../x", "has a '..' component"),
        ("/tmp/x", "has an absolute name"),
        ("", "has an empty name"),
    ],
)
def test_a_name_outside_the_destination_is_refused(tmp_path: Path, name: str, reason: str) -> None:
    archive = _archive(tmp_path / "a.tar.gz", [_file("ok.txt"), _file(name)])
    message = _refused(archive, tmp_path / "dest")
    assert f"its member {name!r} {reason}" in message
    assert str(archive) in message
    assert _tree(tmp_path) == {"a.tar.gz": archive.read_bytes()}


def test_a_name_with_a_nul_byte_is_refused(tmp_path: Path) -> None:
    info, contents = _file("a")
    info.pax_headers = {"path": "a\x00/../../b"}
    archive = _archive(tmp_path / "a.tar.gz", [(info, contents)])
    assert "its member 'a\\x00/../../b' has a NUL byte" in _refused(archive, tmp_path / "dest")
    assert _tree(tmp_path) == {"a.tar.gz": archive.read_bytes()}


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (_special("link", tarfile.SYMTYPE, "/etc"), "is a symbolic link (to '/etc')"),
        (_special("hard", tarfile.LNKTYPE, "ok.txt"), "is a hard link (to 'ok.txt')"),
        (_special("tty", tarfile.CHRTYPE), "is a device file"),
        (_special("disk", tarfile.BLKTYPE), "is a device file"),
        (_special("pipe", tarfile.FIFOTYPE), "is a FIFO"),
        (_special("odd", b"V"), "is of tar type b'V'"),
    ],
    ids=["symlink", "hardlink", "character-device", "block-device", "fifo", "unknown-type"],
)
def test_only_files_and_folders_are_extracted(tmp_path: Path, member: Member, reason: str) -> None:
    archive = _archive(tmp_path / "a.tar.gz", [_file("ok.txt"), member])
    message = _refused(archive, tmp_path / "dest")
    assert f"its member {member[0].name!r} {reason}" in message
    assert _tree(tmp_path) == {"a.tar.gz": archive.read_bytes()}


def test_a_symlink_chain_beyond_path_max_is_refused(tmp_path: Path) -> None:
    # The proof of concept of CVE-2025-4517: links through folders with long names resolve
    # past PATH_MAX, where the "data" filter stops checking, and a file is written through them.
    # With extractall(filter="data") on Python 3.11.7 this writes next to the destination.
    long_name, steps, path = "d" * 247, "abcdefghijklmnop", ""
    members: list[Member] = []
    for step in steps:
        members.append(_folder(f"{path}{long_name}"))
        members.append(_special(f"{path}{step}", tarfile.SYMTYPE, long_name))
        path += f"{long_name}/"
    chain = "/".join([*steps, "l" * 254])
    members.append(_special(chain, tarfile.SYMTYPE, "../" * len(steps)))
    members.append(_special("escape", tarfile.SYMTYPE, f"{chain}/../"))
    members.append(_file("escape/written-outside", b"pwned"))
    archive = _archive(tmp_path / "poc.tar.gz", members)
    message = _refused(archive, tmp_path / "dest")
    assert "its member 'a' is a symbolic link" in message
    assert _tree(tmp_path) == {"poc.tar.gz": archive.read_bytes()}


def test_a_member_listed_twice_is_refused(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "a.tar.gz", [_file("model.keras", b"1"), _file("./model.keras")])
    assert "its member './model.keras' appears twice" in _refused(archive, tmp_path / "dest")


def test_a_file_where_another_member_needs_a_folder_is_refused(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "a.tar.gz", [_file("model"), _file("model/weights")])
    message = _refused(archive, tmp_path / "dest")
    assert "its member 'model/weights' clashes with a file" in message


def test_a_member_over_the_byte_limit_is_refused(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "bomb.tar.gz", [_file("zeros", bytes(5_000_000))])
    assert archive.stat().st_size < 50_000
    message = _refused(archive, tmp_path / "dest", max_bytes=1_000_000)
    assert "its member 'zeros' goes past the limit of 1,000,000 bytes written" in message
    assert _tree(tmp_path) == {"bomb.tar.gz": archive.read_bytes()}


def test_the_byte_limit_counts_every_member_together(tmp_path: Path) -> None:
    members = [_file("first", bytes(600_000)), _file("second", bytes(600_000))]
    archive = _archive(tmp_path / "bomb.tar.gz", members)
    message = _refused(archive, tmp_path / "dest", max_bytes=1_000_000)
    assert "its member 'second' goes past the limit of 1,000,000 bytes" in message
    assert _tree(tmp_path) == {"bomb.tar.gz": archive.read_bytes()}


def test_headers_count_against_the_byte_limit(tmp_path: Path) -> None:
    # tarfile reads a PAX header into memory whole, so its size is bounded too.
    info, contents = _file("small.txt")
    info.pax_headers = {"comment": "x" * 5_000_000}
    archive = _archive(tmp_path / "bomb.tar.gz", [(info, contents)])
    message = _refused(archive, tmp_path / "dest", max_bytes=1_000_000, max_members=10)
    assert f"{archive}: it expands to more than 1,163,840 bytes" in message
    assert _tree(tmp_path) == {"bomb.tar.gz": archive.read_bytes()}


def test_more_members_than_the_limit_are_refused(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "many.tar.gz", [_file(f"f{i}") for i in range(6)])
    message = _refused(archive, tmp_path / "dest", max_members=5)
    assert "its member 'f5' goes past the limit of 5 members" in message
    assert _tree(tmp_path) == {"many.tar.gz": archive.read_bytes()}


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("model/class_names.json", "model"),
        ("model.tar.gz", "model.tar.gz"),
        ("./job.json", "job.json"),
        ("model/", "model"),
    ],
)
def test_an_output_archive_cannot_replace_what_the_job_keeps(
    tmp_path: Path, job_dir: Path, name: str, kept: str
) -> None:
    member = _folder(name) if name.endswith("/") else _file(name, b"replaced")
    archive = _archive(tmp_path / "output.tar.gz", [_file("history.json", b"new"), member])
    before = _tree(job_dir)
    with pytest.raises(UnsafeArchive) as raised:
        safe_extract(archive, job_dir, protected=JOB_FILES)
    assert f"would replace {kept!r}, which the destination keeps" in str(raised.value)
    assert _tree(job_dir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job", "output.tar.gz"]


def test_an_output_archive_adds_to_the_job_folder_and_replaces_its_own_files(
    tmp_path: Path, job_dir: Path
) -> None:
    members = [_file("history.json", b"new"), _file("metrics.json", b"{}")]
    archive = _archive(tmp_path / "output.tar.gz", members)
    before = _tree(job_dir)
    written = safe_extract(archive, job_dir, protected=JOB_FILES)
    assert written == [job_dir / "history.json", job_dir / "metrics.json"]
    assert _tree(job_dir) == before | {"history.json": b"new", "metrics.json": b"{}"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job", "output.tar.gz"]


def test_nothing_is_written_through_a_symlink_at_the_destination(
    tmp_path: Path, job_dir: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (job_dir / "plots").symlink_to(outside)
    archive = _archive(tmp_path / "output.tar.gz", [_file("plots/loss.png", b"png")])
    message = _refused(archive, job_dir)
    assert "would write through the symbolic link 'plots' already there" in message
    assert list(outside.iterdir()) == []


def test_nothing_is_written_over_a_symlink_at_the_destination(
    tmp_path: Path, job_dir: Path
) -> None:
    target = tmp_path / "target.json"
    target.write_text("{}")
    (job_dir / "metrics.json").symlink_to(target)
    archive = _archive(tmp_path / "output.tar.gz", [_file("metrics.json", b"new")])
    message = _refused(archive, job_dir)
    assert "would write over the symbolic link 'metrics.json' already there" in message
    assert target.read_text() == "{}"
    assert (job_dir / "metrics.json").is_symlink()


def test_a_refusal_late_in_the_archive_leaves_the_destination_as_it_was(
    tmp_path: Path, job_dir: Path
) -> None:
    members = [_file("history.json", b"new"), _file("plots/a.png"), _file("../escape")]
    archive = _archive(tmp_path / "output.tar.gz", members)
    before = _tree(job_dir)
    _refused(archive, job_dir)
    assert _tree(job_dir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job", "output.tar.gz"]


def test_a_truncated_gzip_is_refused_as_unreadable(tmp_path: Path) -> None:
    whole = _archive(tmp_path / "whole.tar.gz", [_file("model.keras", os.urandom(100_000))])
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    message = _refused(cut, tmp_path / "dest")
    assert f"Refused to extract {cut}: it is not a readable tar or tar.gz archive" in message
    assert not (tmp_path / "dest").exists()


def test_a_tar_cut_between_members_is_refused(tmp_path: Path) -> None:
    whole = _archive(tmp_path / "whole.tar", [_file("a", bytes(512)), _file("b")], mode="w")
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole.read_bytes()[:1024])
    message = _refused(cut, tmp_path / "dest")
    assert "it is not a readable tar or tar.gz archive (empty header)" in message
    assert not (tmp_path / "dest").exists()


def test_a_tar_with_a_damaged_header_between_members_is_refused(tmp_path: Path) -> None:
    whole = _archive(tmp_path / "whole.tar", [_file("a", bytes(512)), _file("b")], mode="w")
    damaged = bytearray(whole.read_bytes())
    damaged[1024] ^= 0xFF  # The first byte of the second member's name.
    archive = tmp_path / "damaged.tar"
    archive.write_bytes(damaged)
    message = _refused(archive, tmp_path / "dest")
    assert "it is not a readable tar or tar.gz archive (bad checksum)" in message
    assert not (tmp_path / "dest").exists()


@pytest.mark.parametrize("contents", [b"", b"not an archive at all\n" * 40])
def test_a_file_that_is_not_a_tar_is_refused(tmp_path: Path, contents: bytes) -> None:
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(contents)
    assert "it is not a readable tar or tar.gz archive" in _refused(archive, tmp_path / "dest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tar.gz"]


def test_a_destination_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "a.tar.gz", [_file("model.keras")])
    (tmp_path / "dest").write_text("a file")
    with pytest.raises(DataError, match="it is not a folder"):
        safe_extract(archive, tmp_path / "dest")


def test_a_missing_archive_is_an_error_that_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="No such file or directory"):
        safe_extract(tmp_path / "model.tar.gz", tmp_path / "dest")
    assert list(tmp_path.iterdir()) == []
