"""Data preparation: a folder of class folders to a validated, stratified, reproducible split.

The source is read, never written. Every file is decoded once in full (:mod:`.images`);
what cannot be used is skipped with a reason in ``manifest.json`` (:mod:`.manifest`). Kept
files are split (:mod:`.split`) and copied (reflinked where the file system can; never
hard-linked) into ``<out>/{train,validation,test}/<class>/``; images in another mode or
format (RGBA, grayscale, 16-bit, palette, BMP, WebP, TIFF, HEIC) are converted to 8-bit RGB
PNG there, so that the entry point only ever sees RGB JPEG or PNG. Here: finding the
classes and splits of a source, and the steps in order.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from defects.dataset import DEFAULT_CLASSES
from defects.dataset.folders import built_in_place, copy_file, exclusive
from defects.dataset.images import (
    FORMAT_NAMES,
    IMAGE_SUFFIXES,
    CheckedImage,
    check_image,
)
from defects.dataset.manifest import MANIFEST, PreparedDataset, build_manifest, load_manifest
from defects.dataset.split import split_by_class, split_given, without_copies
from defects.errors import DataError

__all__ = ["DEFAULT_CLASSES", "PreparedDataset", "check_image", "load_manifest", "prepare"]
# (the source's split, or None to split it; the class; its folder)
Place = tuple[str | None, str, Path]


ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".7z", ".rar")


def _unpack_hint(archive: Path) -> str:
    name = archive.name.lower()
    if name.endswith(".zip"):
        how = f"`unzip {archive} -d photos`"
    elif ".tar" in name or name.endswith(".tgz"):
        how = f"`mkdir photos && tar -xf {archive} -C photos`"
    else:
        how = "your archive tool"
    return f"Unpack it first ({how}), then pass the folder of class folders."


def _check_source(source: Path) -> None:
    if source.is_file() and source.name.lower().endswith(ARCHIVE_SUFFIXES):
        raise DataError(
            f"{source} is an archive; the data must be a folder.", hint=_unpack_hint(source)
        )
    if not source.is_dir():
        raise DataError(
            f"The data folder {source} does not exist or is not a folder.",
            hint="Pass the folder that holds one sub-folder per class (e.g. good/, scratch/), "
            "such as the unzipped Kaggle download.",
        )


def _subfolders(folder: Path) -> list[Path]:
    """A folder's sub-folders, without hidden ones and archive tools' ``__MACOSX``."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name != "__MACOSX"
    )


def _holds_files(folder: Path, nested: bool = True) -> bool:
    files = folder.rglob("*") if nested else folder.iterdir()
    return any(p.is_file() and not p.name.startswith(".") for p in files)


def classes_in(source: Path) -> list[str]:
    """The classes of ``source`` when none are named: good, oil, scratch and stain when it
    has a folder for each (other folders are then ignored, as with ``--classes``); else
    its sub-folders that hold files, sorted, or those of its only sub-folder when the
    classes sit one level down (an unzipped archive's top folder). A source divided into
    splits already has the classes of its ``train`` folder."""
    _check_source(source)
    splits = given_splits(source)
    if splits is not None:
        return classes_in(splits["train"])
    try:
        find_class_folders(source, DEFAULT_CLASSES)
        return list(DEFAULT_CLASSES)
    except DataError:
        pass
    level = source
    folders = _subfolders(level)
    if len(folders) == 1 and not any(_holds_files(f, nested=False) for f in (level, folders[0])):
        level = folders[0]
        folders = _subfolders(level)
    classes = [folder.name for folder in folders if _holds_files(folder)]
    if len(classes) < 2:
        where = level if level == source else f"{source} (in {level.relative_to(source)})"
        found = ", ".join(classes) or "none"
        raise DataError(
            f"A classifier needs at least two class folders with images in {where}; found: "
            f"{found}.",
            hint="Put each class's images in a folder named after it (e.g. good/, scratch/), "
            "or name the class folders with --classes.",
        )
    return classes


# Folder names (any letter case) that say a source comes divided into splits already, each
# holding the class folders: the splits they are.
SPLIT_FOLDERS = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}


def given_splits(source: Path) -> dict[str, Path] | None:
    """The split folders of a source that comes divided (``train/``, ``val/``, ``test/``,
    each with the class folders inside, at the top or one level down), by the split each
    is; None for a folder of class folders. A folder named ``train`` that holds images
    itself is a class, not a split."""
    _check_source(source)
    folders = _subfolders(source)
    single = len(folders) == 1 and not _holds_files(source, nested=False)
    if single and folders[0].name.lower() not in SPLIT_FOLDERS:
        folders = _subfolders(folders[0])
    # Other folders beside the splits (masks/, docs/) are ignored, and reported.
    named = [(f, split) for f in folders if (split := SPLIT_FOLDERS.get(f.name.lower()))]
    if not named:
        return None
    if any(_holds_files(folder, nested=False) or not _subfolders(folder) for folder, _ in named):
        return None
    found: dict[str, Path] = {}
    for folder, split in named:
        assert split is not None
        if split in found:
            raise DataError(
                f"Both {found[split].name}/ and {folder.name}/ in {folder.parent} are the "
                f"{split} split.",
                hint="Keep one folder per split (train/, val/, test/), or merge them.",
            )
        found[split] = folder
    return found if "train" in found else None


def find_class_folders(source: Path, classes: Sequence[str]) -> tuple[dict[str, Path], list[str]]:
    """Class folders (any letter case, at the top or one level down) and the ignored folders."""
    _check_source(source)
    wanted = {name.lower(): name for name in classes}
    found: dict[str, list[Path]] = {}
    ignored: list[str] = []
    candidates = _subfolders(source)
    for folder in candidates:
        if folder.name.lower() in wanted:
            found.setdefault(wanted[folder.name.lower()], []).append(folder)
            continue
        inside = _subfolders(folder)
        nested = [p for p in inside if p.name.lower() in wanted]
        for inner in nested:
            found.setdefault(wanted[inner.name.lower()], []).append(inner)
        if not nested:
            ignored.append(folder.relative_to(source).as_posix())
        else:
            ignored += [
                p.relative_to(source).as_posix() for p in inside if p.name.lower() not in wanted
            ]
    duplicated = {name: paths for name, paths in found.items() if len(paths) > 1}
    if duplicated:
        name, paths = next(iter(duplicated.items()))
        raise DataError(
            f"The class {name!r} has more than one folder: "
            + ", ".join(str(p.relative_to(source)) for p in paths)
            + ".",
            hint="Keep one folder per class, or point --data at the right level.",
        )
    missing = [name for name in classes if name not in found]
    if missing:
        seen = ", ".join(p.name for p in candidates) or "no folders at all"
        raise DataError(
            f"No folder for class(es) {', '.join(missing)} in {source} (found: {seen}).",
            hint="Each class needs a folder of images named after it; use --classes to name "
            "other classes.",
        )
    return {name: found[name][0] for name in classes}, ignored


def _target_name(checked: CheckedImage, depth: int = 1) -> str:
    # The path inside the class folder (``depth`` folders down the source), flattened:
    # nested sub-folders cannot collide.
    name = checked.relative.split("/", depth)[depth].replace("/", "__")
    if checked.conversion and Path(name).suffix.lower() != ".png":
        # shot.bmp and shot.webp beside shot.png: shot.bmp.png, shot.webp.png, shot.png.
        name += ".png"
    return name


def prepare(
    source: Path,
    out_dir: Path | None = None,
    classes: Sequence[str] | None = None,
    seed: int = 0,
    validation: float = 0.15,
    test: float = 0.15,
    data_dir: Path = Path("data"),
    advance: Callable[[int], None] = lambda n: None,
    on_total: Callable[[int], None] = lambda n: None,
) -> PreparedDataset:
    """Validate, split and lay out ``source``; returns the prepared dataset.

    Without ``out_dir`` the result goes to ``<data_dir>/prepared/<dataset-id>`` and an
    identical earlier preparation is reused. Without ``classes`` they are the source's
    folders (:func:`classes_in`).
    """
    source = source.expanduser()
    splits = given_splits(source)
    if classes is None:
        classes = classes_in(source)
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise DataError(
            f"Classes {list(classes)} must be at least two distinct names.",
            hint="Pass --classes good,oil,scratch,stain or your own list.",
        )
    if not (0 < validation < 0.5 and 0 < test < 0.5 and validation + test < 0.8):
        raise DataError("Validation and test fractions must each be in (0, 0.5).")
    places, ignored = _places(source, classes, splits)
    candidates, given = _candidates(places)
    on_total(len(candidates))
    spool_root = out_dir.parent if out_dir is not None else data_dir / "prepared"
    spool_root.mkdir(parents=True, exist_ok=True)
    # Converted images wait here, on the same disk, until they are moved into place.
    with tempfile.TemporaryDirectory(prefix=".converting-", dir=spool_root) as spool:
        kept, skipped = _checked(candidates, given, advance, Path(spool))
        _require_every_class(kept, skipped, classes, source)
        assignment = _assign(kept, skipped, classes, given, splits, (validation, test), seed)
        files = _entries(kept, assignment, depth=1 if splits is None else 2)
        manifest = build_manifest(
            source, files, classes, seed, (validation, test), splits, ignored, skipped
        )
        target = out_dir if out_dir is not None else data_dir / "prepared" / manifest["dataset_id"]
        return _lay_out(target, kept, manifest)


def _assign(
    kept: list[CheckedImage],
    skipped: list[dict[str, str]],
    classes: Sequence[str],
    given: dict[str, str],
    splits: dict[str, Path] | None,
    fractions: tuple[float, float],
    seed: int,
) -> dict[str, str]:
    """Each kept image's split (a divided source keeps its own)."""
    validation, test = fractions
    try:
        if splits is None:
            return split_by_class(kept, classes, validation, test, seed)
        return split_given(kept, classes, given, validation, test, seed)
    except DataError as error:
        if not skipped:
            raise
        # Too few images may be too few usable ones: say which were not.
        raise DataError(
            f"{error.message} {len(skipped)} file(s) were skipped, e.g. "
            f"{skipped[0]['source']}: {skipped[0]['reason']}.",
            hint=error.hint,
        ) from None


def _places(
    source: Path, classes: Sequence[str], splits: dict[str, Path] | None
) -> tuple[list[Place], list[str]]:
    """Where each class's images are, and the folders ignored."""
    if splits is None:
        folders, ignored = find_class_folders(source, classes)
        return [(None, name, folder) for name, folder in folders.items()], ignored
    level = next(iter(splits.values())).parent
    ignored = [
        folder.relative_to(source).as_posix()
        for folder in _subfolders(level)
        if folder not in splits.values()
    ]
    places: list[Place] = []
    for split, split_folder in splits.items():
        folders, unused = find_class_folders(split_folder, classes)
        places += [(split, name, folder) for name, folder in folders.items()]
        ignored += [f"{split_folder.relative_to(source).as_posix()}/{name}" for name in unused]
    return places, ignored


def _candidates(
    places: list[Place],
) -> tuple[list[tuple[Path, str, str]], dict[str, str]]:
    """Every file to check as ``(path, name in the dataset, class)``, and the split a
    divided source gives each of its files."""
    candidates: list[tuple[Path, str, str]] = []
    given: dict[str, str] = {}
    for given_split, name, folder in places:
        # A divided source's images are named from its split folder: train/<class>/<file>.
        prefix = f"{folder.parent.name}/{name}" if given_split else name
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                relative = f"{prefix}/{path.relative_to(folder).as_posix()}"
                candidates.append((path, relative, name))
                if given_split:
                    given[relative] = given_split
    return candidates, given


def _checked(
    candidates: list[tuple[Path, str, str]],
    given: dict[str, str],
    advance: Callable[[int], None],
    spool: Path,
) -> tuple[list[CheckedImage], list[dict[str, str]]]:
    """The usable images, one of each content, and every skipped file with its reason. A
    converted image is written to ``spool`` at once: memory holds what is known of each
    image, never the images themselves, however many there are."""

    def check(numbered: tuple[int, tuple[Path, str, str]]) -> CheckedImage:
        number, candidate = numbered
        result = check_image(*candidate)
        if result.converted is not None:
            written = spool / f"{number}.png"
            written.write_bytes(result.converted)
            result = replace(result, converted=None, spooled=str(written))
        advance(1)
        return result

    # Decoding releases the GIL: threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(check, enumerate(candidates)))
    kept, copies = without_copies([r for r in results if not r.reason], given)
    skipped = [{"source": r.relative, "reason": r.reason} for r in results if r.reason]
    return kept, skipped + copies


def _require_every_class(
    kept: list[CheckedImage], skipped: list[dict[str, str]], classes: Sequence[str], source: Path
) -> None:
    empty = [name for name in classes if not any(r.class_name == name for r in kept)]
    if empty:
        raise DataError(
            f"No usable images for class(es) {', '.join(empty)} in {source}"
            + (
                f" ({len(skipped)} file(s) skipped, e.g. {skipped[0]['source']}: "
                f"{skipped[0]['reason']})"
                if skipped
                else ""
            )
            + ".",
            hint=f"Put {FORMAT_NAMES} images ({' '.join(IMAGE_SUFFIXES)}) in every class folder.",
        )


def _entries(
    kept: list[CheckedImage], assignment: dict[str, str], depth: int
) -> list[dict[str, Any]]:
    """The manifest's entry of every kept image, in name order."""
    files = []
    for checked in sorted(kept, key=lambda c: c.relative):
        split = assignment[checked.relative]
        entry: dict[str, Any] = {
            "source": checked.relative,
            "path": f"{split}/{checked.class_name}/{_target_name(checked, depth)}",
            "class": checked.class_name,
            "split": split,
            "bytes": checked.size,
            "width": checked.width,
            "height": checked.height,
            "sha256": checked.sha256,
            "md5": checked.md5,
        }
        if checked.conversion:
            entry["converted"] = checked.conversion
        files.append(entry)
    paths = [f["path"] for f in files]
    if len(set(paths)) != len(paths):
        duplicate = next(p for p, n in Counter(paths).items() if n > 1)
        raise DataError(f"Two source files map to the same prepared file {duplicate}.")
    return files


def _lay_out(target: Path, kept: list[CheckedImage], manifest: dict[str, Any]) -> PreparedDataset:
    """The prepared folder, built whole in place, or the identical one already there."""
    dataset_id = manifest["dataset_id"]
    # Jobs started at once prepare the same dataset one after the other: the later reuse it.
    with exclusive(target, "another job is preparing the same dataset"):
        existing = load_manifest(target) if target.exists() else None
        if existing is not None and existing.dataset_id == dataset_id:
            return existing
        if target.exists() and any(target.iterdir()):
            raise DataError(
                f"The output folder {target} is not empty and holds another dataset.",
                hint="Choose another --out folder; nothing is overwritten.",
            )
        by_relative = {c.relative: c for c in kept}
        with built_in_place(target) as staging:
            for entry in manifest["files"]:
                checked = by_relative[entry["source"]]
                destination = staging / entry["path"]
                destination.parent.mkdir(parents=True, exist_ok=True)
                if checked.spooled:
                    os.replace(checked.spooled, destination)
                else:
                    # A copy, never a link: nothing written here can reach the source.
                    copy_file(checked.source, destination)
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return PreparedDataset(target, manifest)
