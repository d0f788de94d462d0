"""Data folders that several jobs share: each is built by one job at a time, under a lock.

Jobs started at once in the same folder ask for the same synthetic photos, the same
prepared dataset and the same shards. The first takes the folder's lock (``fcntl.flock`` on
``.<name>.lock`` beside it) and builds the folder under a temporary name that it renames
into place when it is complete; the others wait for the lock and then reuse the finished
folder. No job ever sees, or removes, another job's half-written files. The lock goes with
its process, so a killed job never leaves a folder locked.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from defects.console import log
from defects.errors import DataError


def lock_path(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.lock")


@contextmanager
def exclusive(folder: Path, waiting: str = "") -> Iterator[None]:
    """Hold ``folder``'s lock while the block runs, waiting for any other holder first
    (another process, or another thread of this one); ``waiting`` is logged if it must wait."""
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                log.info("Waiting: %s (%s).", waiting, folder)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def built_in_place(folder: Path) -> Iterator[Path]:
    """A fresh temporary folder to build ``folder`` in, renamed to ``folder`` when the block
    ends without an error (and removed when it fails). Call it under :func:`exclusive`:
    the temporary name is the same for every job, and an earlier one is a leftover of an
    interrupted build. An existing ``folder`` must be empty, or an incomplete build of ours."""
    partial = folder.with_name(folder.name + ".partial")
    refuse_links(
        (folder, partial),
        "builds its data folders itself and never writes through one",
        "the folder is made again where it was",
    )
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(partial, folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def refuse_links(paths: Iterable[Path], what_defects_does: str, remade: str) -> None:
    """Refuse a symbolic link planted where defects builds (or clears) a folder of its own:
    nothing is ever written or removed through one."""
    for path in paths:
        if path.is_symlink():
            raise DataError(
                f"{path} is a symbolic link (to {os.readlink(path)}); defects {what_defects_does}.",
                hint=f"Remove the link; {remade}.",
            )


def copy_file(source: Path, destination: Path) -> None:
    """Copy ``source``: a reflink (a copy-on-write clone, free) where the file system has
    them, else a full copy. Never a hard link: the prepared tree must not reach the source."""
    with source.open("rb") as reading, destination.open("wb") as writing:
        try:
            fcntl.ioctl(writing.fileno(), _FICLONE, reading.fileno())
            return
        except OSError:
            pass
    shutil.copyfile(source, destination)


# ioctl FICLONE (linux/fs.h): clone a whole file on btrfs, XFS and other reflink file systems.
_FICLONE = 0x40049409
