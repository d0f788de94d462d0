"""Unpacking the tar archives the tool is given: a model.tar.gz and a job's output.tar.gz.

``safe_extract`` is the only place the tool unpacks an archive. It writes regular files and
folders and nothing else, so it needs no ``tarfile`` extraction filter to be safe, and it uses
none: on Python 3.11.7 the ``data`` filter is walked around by a chain of symbolic links that
resolves beyond PATH_MAX (CVE-2025-4517), and here no link of any kind is ever created. The
members are read one by one and copied by this module; ``TarFile.extract`` is never called.

An archive is refused, and nothing is written, when a member

- is anything but a regular file or a folder: a symbolic or hard link, a device, a FIFO, or
  a type ``tarfile`` does not know;
- has an empty name, a NUL byte in its name, an absolute name, a ``..`` component, or a name
  that would land outside the destination;
- appears twice, or is a file where another member needs a folder (or the reverse);
- is, or is inside, one of the ``protected`` names: what the destination's owner keeps;
- would write over or through a symbolic link already at the destination, or put a file
  where it has a folder (or the reverse);
- goes past ``max_members`` members (default 10,000) or ``max_bytes`` bytes written in all
  (default 2 GiB). Bytes are counted as they are written, not taken from the headers, and
  the decompressed stream as a whole may not exceed the byte limit plus a small allowance
  per member for headers.

A file that is not a tar archive (plain or gzipped), or one that is truncated or corrupt, is
refused the same way. Every refusal is an ``UnsafeArchive`` naming the archive, the member
and the reason.

Extraction is all or nothing. The members are unpacked into a new folder next to the
destination (so on the same filesystem), and only when all of them have passed do they move
into place: a destination that does not exist yet is that folder, renamed; into one that
exists, each entry is renamed, replacing a file of the same name and merging into a folder
of the same name, so other files there stay. Files get mode 0o644 and folders 0o755, less
the umask, whatever the archive says; owners and times in the archive are ignored.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Collection
from pathlib import Path
from typing import Self

from defects.errors import DataError, UnsafeArchive

MAX_BYTES = 2 * 1024**3
MAX_MEMBERS = 10_000

FILE_MODE = 0o644
FOLDER_MODE = 0o755

_BLOCK = 1024 * 1024
# Room in the decompressed stream for each member's headers (PAX records, long names,
# padding) on top of its contents.
_HEADER_ALLOWANCE = 16 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_OPEN_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)

_REFUSED_HINT = (
    "Nothing was extracted. Only regular files and folders with relative names, within the "
    "size limits, are unpacked; take the archive again from where the job stored it."
)
_UNREADABLE_HINT = "Nothing was extracted. The copy may be incomplete; download it again."


class _Refused(Exception):
    def __init__(self, reason: str, member: str | None = None, hint: str = _REFUSED_HINT) -> None:
        super().__init__(reason)
        self.reason = reason
        self.member = member
        self.hint = hint


class _StrictTarInfo(tarfile.TarInfo):
    """A header as ``tarfile`` reads it, except that a damaged or missing one is an error:
    ``tarfile`` takes it for the end of the archive and drops every member after it."""

    @classmethod
    def fromtarfile(cls, tar: tarfile.TarFile) -> Self:
        try:
            return super().fromtarfile(tar)
        except tarfile.EOFHeaderError:  # type: ignore[attr-defined]
            raise  # A block of zeros: the end of the archive.
        except tarfile.HeaderError as error:
            raise _Refused(_unreadable(error), hint=_UNREADABLE_HINT) from error


class _LimitedReader(io.RawIOBase):
    """The decompressed archive, refused once more than ``limit`` bytes have come out."""

    def __init__(self, stream: io.BufferedIOBase, limit: int) -> None:
        super().__init__()
        self._stream = stream
        self.limit = limit
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        wanted = self.limit - self.consumed + 1
        if 0 <= size < wanted:
            wanted = size
        try:
            data = self._stream.read(wanted)
        except (OSError, EOFError, zlib.error) as error:
            raise _Refused(_unreadable(error), hint=_UNREADABLE_HINT) from error
        self.consumed += len(data)
        if self.consumed > self.limit:
            raise _Refused(f"expands to more than {self.limit:,} bytes")
        return data


def safe_extract(
    archive: Path,
    destination: Path,
    *,
    max_bytes: int = MAX_BYTES,
    max_members: int = MAX_MEMBERS,
    protected: Collection[str] = (),
) -> list[Path]:
    """Unpack ``archive`` into ``destination``, or refuse it and write nothing.

    ``protected`` holds ``/``-separated names relative to ``destination``; a member that is
    one of them, or inside one, is refused. The destination itself may be a link (to a folder
    on another disk, say); nothing below it may be. Returns the files written, in the
    archive's order. Raises ``UnsafeArchive`` when the archive is refused, ``DataError`` when
    it cannot be read or written for another reason.
    """
    target = destination.resolve()
    if target.exists() and not target.is_dir():
        raise DataError(
            f"Cannot extract {archive} into {destination}: it is not a folder.",
            hint="Move the file away or choose another destination.",
        )
    existing = target if target.exists() else None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    except OSError as error:
        raise DataError(
            f"Cannot extract {archive} next to {destination}: {error.strerror}.",
            hint="Check that the folder is writable.",
        ) from error
    try:
        contents = staging / "contents"
        contents.mkdir(FOLDER_MODE)
        files = _unpack(
            archive, contents, existing, max_bytes, max_members, _split_names(protected)
        )
        if existing is None:
            contents.rename(target)
        else:
            _merge(contents, target)
    except _Refused as refusal:
        subject = "it" if refusal.member is None else f"its member {refusal.member!r}"
        raise UnsafeArchive(
            f"Refused to extract {archive}: {subject} {refusal.reason}.", hint=refusal.hint
        ) from None
    except OSError as error:
        raise DataError(
            f"Could not extract {archive} into {destination}: {error}.",
            hint="Check free space and permissions there.",
        ) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [destination.joinpath(*parts) for parts in files]


def _unpack(
    archive: Path,
    contents: Path,
    existing: Path | None,
    max_bytes: int,
    max_members: int,
    protected: set[tuple[str, ...]],
) -> list[tuple[str, ...]]:
    """Copy every member into ``contents``; the files written, as name parts."""
    seen: set[tuple[str, ...]] = set()
    files: list[tuple[str, ...]] = []
    modes: dict[tuple[str, ...], int | None] = {}
    written = 0
    with _open(archive) as stream:
        reader = _LimitedReader(stream, max_bytes + max_members * _HEADER_ALLOWANCE)
        try:
            with tarfile.open(fileobj=reader, mode="r|", tarinfo=_StrictTarInfo) as tar:
                for count, member in enumerate(tar, start=1):
                    if count > max_members:
                        raise _Refused(
                            f"goes past the limit of {max_members:,} members", member.name
                        )
                    parts = _checked(member, seen, protected)
                    if not parts:
                        continue  # The archive's own root folder, "." or "./".
                    try:
                        if existing is not None:
                            _check_existing(existing, parts, member.isdir(), modes)
                        if member.isdir():
                            _make_folders(contents, parts, member.name)
                            continue
                        _make_folders(contents, parts[:-1], member.name)
                        path = contents.joinpath(*parts)
                        written = _copy(tar, member, path, written, max_bytes)
                    except OSError as error:
                        raise DataError(
                            f"Could not extract {archive}: writing its member {member.name!r} "
                            f"failed: {error.strerror}.",
                            hint="Nothing was extracted. Check free space and permissions.",
                        ) from error
                    files.append(parts)
        except tarfile.TarError as error:
            raise _Refused(_unreadable(error), hint=_UNREADABLE_HINT) from error
        # Read to the end so that gzip checks its length and checksum.
        while reader.read(_BLOCK):
            pass
    return files


def _open(archive: Path) -> io.BufferedIOBase:
    """The archive's tar stream, gzipped or not."""
    try:
        with open(archive, "rb") as start:
            compressed = start.read(len(_GZIP_MAGIC)) == _GZIP_MAGIC
        return gzip.open(archive, "rb") if compressed else open(archive, "rb")
    except OSError as error:
        raise DataError(
            f"Cannot read {archive}: {error.strerror}.",
            hint="Check that the file exists and is readable.",
        ) from error


def _unreadable(error: BaseException) -> str:
    return f"is not a readable tar or tar.gz archive ({error or type(error).__name__})"


def _split_names(names: Collection[str]) -> set[tuple[str, ...]]:
    return {tuple(p for p in name.split("/") if p not in ("", ".")) for name in names}


def _checked(
    member: tarfile.TarInfo, seen: set[tuple[str, ...]], protected: set[tuple[str, ...]]
) -> tuple[str, ...]:
    """The member's name as parts below the destination, or a refusal."""
    name = member.name
    if member.issym():
        raise _Refused(f"is a symbolic link (to {member.linkname!r})", name)
    if member.islnk():
        raise _Refused(f"is a hard link (to {member.linkname!r})", name)
    if member.ischr() or member.isblk():
        raise _Refused("is a device file", name)
    if member.isfifo():
        raise _Refused("is a FIFO", name)
    if not (member.isreg() or member.isdir()):
        raise _Refused(f"is of tar type {member.type!r}, neither a file nor a folder", name)
    if not name:
        raise _Refused("has an empty name", name)
    if "\x00" in name:
        raise _Refused("has a NUL byte in its name", name)
    if name.startswith("/"):
        raise _Refused("has an absolute name", name)
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise _Refused("has a '..' component", name)
    # Where the separator is not "/", a part can still hold one, or a drive.
    if parts and os.path.normpath(os.path.join("root", *parts)).split(os.sep)[0] != "root":
        raise _Refused("would land outside the destination", name)
    if not parts:
        if member.isdir():
            return parts
        raise _Refused("is a file named after the destination itself", name)
    if parts in seen:
        raise _Refused("appears twice in the archive", name)
    seen.add(parts)
    for depth in range(1, len(parts) + 1):
        if parts[:depth] in protected:
            kept = "/".join(parts[:depth])
            raise _Refused(f"would replace {kept!r}, which the destination keeps", name)
    return parts


def _check_existing(
    destination: Path,
    parts: tuple[str, ...],
    is_folder: bool,
    modes: dict[tuple[str, ...], int | None],
) -> None:
    """Refuse a member that would go over or through what the destination has."""
    for depth in range(1, len(parts) + 1):
        prefix = parts[:depth]
        if prefix not in modes:
            try:
                modes[prefix] = destination.joinpath(*prefix).lstat().st_mode
            except FileNotFoundError:
                modes[prefix] = None
        mode = modes[prefix]
        if mode is None:
            return  # Nothing below a missing entry exists either.
        shown = "/".join(prefix)
        last = depth == len(parts)
        name = "/".join(parts)
        if stat.S_ISLNK(mode):
            how = "over" if last else "through"
            raise _Refused(f"would write {how} the symbolic link {shown!r} already there", name)
        if not last and not stat.S_ISDIR(mode):
            raise _Refused(f"needs {shown!r} to be a folder, but a file is there", name)
        if last and is_folder and not stat.S_ISDIR(mode):
            raise _Refused("is a folder, but a file of that name is already there", name)
        if last and not is_folder and not stat.S_ISREG(mode):
            kind = "folder" if stat.S_ISDIR(mode) else "special file"
            raise _Refused(f"is a file, but a {kind} of that name is already there", name)


def _make_folders(contents: Path, parts: tuple[str, ...], member: str) -> None:
    folder = contents
    for part in parts:
        folder = folder / part
        try:
            folder.mkdir(FOLDER_MODE)
        except FileExistsError:
            if not stat.S_ISDIR(folder.lstat().st_mode):
                raise _Refused(
                    "clashes with a file of the same name in the archive", member
                ) from None


def _copy(
    tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path, written: int, max_bytes: int
) -> int:
    """Stream one file out of the archive; the total bytes written so far."""
    name = member.name
    limit = f"goes past the limit of {max_bytes:,} bytes written"
    if written + member.size > max_bytes:
        raise _Refused(limit, name)
    source = tar.extractfile(member)
    if source is None:
        raise _Refused("has no contents to read", name)
    try:
        descriptor = os.open(path, _OPEN_FLAGS, FILE_MODE)
    except (FileExistsError, IsADirectoryError):
        raise _Refused("clashes with a folder of the same name in the archive", name) from None
    try:
        while block := source.read(_BLOCK):
            written += len(block)
            if written > max_bytes:
                raise _Refused(limit, name)
            view = memoryview(block)
            while view:
                view = view[os.write(descriptor, view) :]
    finally:
        os.close(descriptor)
    return written


def _merge(source: Path, target: Path) -> None:
    """Rename each entry of ``source`` into ``target``, merging folders into folders."""
    for entry in sorted(source.iterdir()):
        place = target / entry.name
        try:
            mode = place.lstat().st_mode
        except FileNotFoundError:
            entry.rename(place)
            continue
        if entry.is_dir() and stat.S_ISDIR(mode):
            _merge(entry, place)
        elif not entry.is_dir() and stat.S_ISREG(mode):
            entry.replace(place)
        else:
            raise _Refused(f"would replace {place}, which changed while it was unpacked")
