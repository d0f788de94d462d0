"""Data preparation: a folder of class folders to a validated, stratified, reproducible split.

The source is read, never written. Every file is decoded once in full; what cannot be used
is skipped with a reason in ``manifest.json``. Kept files are copied (reflinked where the file
system can; never hard-linked) into ``<out>/{train,validation,test}/<class>/``; images in
another mode or format (RGBA, grayscale, 16-bit, palette, BMP, WebP, TIFF, HEIC) are converted to
8-bit RGB PNG there, so that the entry point only ever sees RGB JPEG or PNG.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from defects.dataset import DEFAULT_CLASSES
from defects.dataset.folders import built_in_place, copy_file, exclusive
from defects.errors import DataError

__all__ = ["DEFAULT_CLASSES", "PreparedDataset", "check_image", "load_manifest", "prepare"]
# The image files a source may hold, by format. Anything but an 8-bit RGB JPEG or PNG is
# converted to PNG (the first frame of an animated or multi-page file).
IMAGE_FORMATS = {
    "JPEG": (".jpg", ".jpeg"),
    "PNG": (".png",),
    "BMP": (".bmp",),
    "WEBP": (".webp",),
    "TIFF": (".tif", ".tiff"),
    "HEIF": (".heic", ".heif"),
}
IMAGE_SUFFIXES = tuple(suffix for suffixes in IMAGE_FORMATS.values() for suffix in suffixes)
FORMAT_NAMES = "JPEG, PNG, BMP, WebP, TIFF or HEIC"
SPLITS = ("train", "validation", "test")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
# Enough to put one image of every class in each split.
MIN_PER_CLASS = len(SPLITS)
# Decompression-bomb guard: far above any inspection photo.
Image.MAX_IMAGE_PIXELS = 120_000_000


@dataclass(frozen=True)
class PreparedDataset:
    root: Path
    manifest: dict[str, Any]

    @property
    def dataset_id(self) -> str:
        return str(self.manifest["dataset_id"])

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        return dict(self.manifest["counts"])

    @property
    def skipped(self) -> list[dict[str, str]]:
        return list(self.manifest["skipped"])

    def files(self) -> list[dict[str, Any]]:
        return list(self.manifest["files"])

    def summary(self) -> str:
        sizes = ", ".join(f"{split} {sum(self.counts[split].values())}" for split in SPLITS)
        classes = ", ".join(self.manifest["classes"])
        line = f"dataset {self.dataset_id} (classes {classes}): {sizes} images in {self.root}"
        given = self.manifest.get("given_splits")
        if given:
            taken = [split for split in SPLITS if split not in given]
            folders = ", ".join(f"{given[split]}/" for split in SPLITS if split in given)
            line += f"; the source's own splits kept ({folders})"
            line += f", {' and '.join(taken)} taken from train" if taken else ""
        if self.skipped:
            line += f"; skipped {len(self.skipped)} file(s), reasons in {self.root / MANIFEST}"
        return line


@dataclass(frozen=True)
class CheckedImage:
    source: Path
    relative: str
    class_name: str
    reason: str = ""
    sha256: str = ""
    md5: str = ""
    width: int = 0
    height: int = 0
    size: int = 0
    # Set when the image must be converted; holds the converted PNG bytes.
    converted: bytes | None = None
    conversion: str = ""


def load_manifest(root: Path) -> PreparedDataset | None:
    path = root / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"The manifest {path} is unreadable: {error}.") from error
    if manifest.get("format") != MANIFEST_FORMAT:
        raise DataError(
            f"{path} was written by another version of this tool.",
            hint="Prepare the source folder again with `defects prepare`.",
        )
    return PreparedDataset(root, manifest)


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


@functools.cache
def _read_heif() -> None:
    """Let Pillow open HEIC/HEIF files (once, when the first image is checked)."""
    from pillow_heif import register_heif_opener

    register_heif_opener()


def check_image(path: Path, relative: str = "", class_name: str = "") -> CheckedImage:
    """Read and fully decode one file; ``reason`` says why it cannot be used, if so."""
    _read_heif()
    skipped = CheckedImage(path, relative, class_name)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return _replace(skipped, reason=f"unsupported file type {path.suffix or '(none)'}")
    try:
        contents = path.read_bytes()
    except OSError as error:
        return _replace(skipped, reason=f"cannot be read: {error.strerror or error}")
    if not contents:
        return _replace(skipped, reason="empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(contents)) as image:
            image.load()
            image_format = image.format or ""
            mode = image.mode
            width, height = image.size
            unusable = _unusable(image_format, mode)
            converted, conversion = (None, "") if unusable else _convert(image, image_format)
    except UnidentifiedImageError:
        return _replace(skipped, reason=f"not an image (no {FORMAT_NAMES} content)")
    except Image.DecompressionBombError as error:
        return _replace(skipped, reason=f"image too large: {error}")
    except (OSError, SyntaxError, ValueError) as error:
        return _replace(skipped, reason=f"unreadable or truncated image: {error}")
    if unusable:
        return _replace(skipped, reason=unusable)
    if min(width, height) < 16:
        return _replace(skipped, reason=f"too small ({width}x{height})")
    payload = converted if converted is not None else contents
    return CheckedImage(
        source=path,
        relative=relative,
        class_name=class_name,
        sha256=hashlib.sha256(payload).hexdigest(),
        md5=hashlib.md5(payload, usedforsecurity=False).hexdigest(),
        width=width,
        height=height,
        size=len(payload),
        converted=converted,
        conversion=conversion,
    )


def _replace(checked: CheckedImage, reason: str) -> CheckedImage:
    return CheckedImage(checked.source, checked.relative, checked.class_name, reason=reason)


def _unusable(image_format: str, mode: str) -> str:
    """Why an image of this format and pixel mode cannot be used; empty when it can."""
    if image_format not in IMAGE_FORMATS:
        return f"unsupported image format {image_format} ({mode})"
    if mode in {"F", "I;16S"} or mode.startswith("I;32"):
        return f"unsupported pixel mode {mode} (save it as 8- or 16-bit)"
    return ""


def _convert(image: Image.Image, image_format: str) -> tuple[bytes | None, str]:
    """8-bit RGB JPEG/PNG pass through (``None``); anything else becomes an 8-bit RGB PNG,
    with a description of the conversion."""
    if image.mode == "RGB" and image_format in {"JPEG", "PNG"}:
        return None, ""
    frames = getattr(image, "n_frames", 1)
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        pixels = np.asarray(image, dtype=np.uint32)
        peak = 65535 if image.mode.startswith("I;16") or pixels.max() > 255 else 255
        scaled = (pixels.astype(np.float64) * 255.0 / peak).round().astype(np.uint8)
        rgb = Image.fromarray(scaled, mode="L").convert("RGB")
        description = f"16-bit {image.mode} to 8-bit RGB"
    elif image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels become white, as an image viewer shows them.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = Image.alpha_composite(background, rgba).convert("RGB")
        description = f"{image.mode} to RGB on white"
    else:
        rgb = image.convert("RGB")
        description = f"{image_format} {image.mode} to RGB"
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG", compress_level=1)
    first = f" (the first of {frames} frames)" if frames > 1 else ""
    return buffer.getvalue(), description + " PNG" + first


def _target_name(checked: CheckedImage, depth: int = 1) -> str:
    # The path inside the class folder (``depth`` folders down the source), flattened:
    # nested sub-folders cannot collide.
    name = checked.relative.split("/", depth)[depth].replace("/", "__")
    if checked.converted is not None and Path(name).suffix.lower() != ".png":
        # shot.bmp and shot.webp beside shot.png: shot.bmp.png, shot.webp.png, shot.png.
        name += ".png"
    return name


def _without_copies(
    kept: list[CheckedImage], given: dict[str, str]
) -> tuple[list[CheckedImage], list[dict[str, str]]]:
    """One image of each content, and the reason every other copy is skipped.

    Byte-identical copies (a photo saved twice, ``IMG_1 (1).jpg``) would land in different
    splits, and a test image the network trained on makes the test figures a lie: one copy
    is kept, in a divided source the one in train before validation before test, else the
    one of the shortest name (the original beside ``IMG_1 (1).jpg``). An image found in two
    classes has no one right label: every copy is skipped."""
    order = {split: rank for rank, split in enumerate(SPLITS)}

    def preference(image: CheckedImage) -> tuple[int, int, str]:
        split = given.get(image.relative, "train")
        return order[split], len(image.relative), image.relative

    by_content: dict[str, list[CheckedImage]] = {}
    for image in sorted(kept, key=preference):
        by_content.setdefault(image.sha256, []).append(image)
    unique: list[CheckedImage] = []
    skipped: list[dict[str, str]] = []
    for copies in by_content.values():
        first, *others = copies
        classes = sorted({image.class_name for image in copies})
        if len(classes) > 1:
            for image in copies:
                elsewhere = ", ".join(c.relative for c in copies if c is not image)
                skipped.append(
                    {
                        "source": image.relative,
                        "reason": f"the same image is in the classes {' and '.join(classes)} "
                        f"({elsewhere})",
                    }
                )
            continue
        unique.append(first)
        skipped += [
            {"source": other.relative, "reason": f"a copy of {first.relative}"} for other in others
        ]
    return unique, skipped


def _split(
    checked: list[CheckedImage], classes: Sequence[str], validation: float, test: float, seed: int
) -> dict[str, str]:
    """Stratified by construction: every class is split on its own with the same fractions."""
    # Imported here: scikit-learn takes a second to import, and only splitting needs it.
    from sklearn.model_selection import train_test_split

    assignment: dict[str, str] = {}
    for name in classes:
        members = sorted(c.relative for c in checked if c.class_name == name)
        if len(members) < MIN_PER_CLASS:
            raise DataError(
                f"The class {name!r} has {len(members)} usable image(s); at least "
                f"{MIN_PER_CLASS} are needed (one each for train, validation and test).",
                hint="Add images to that class, or drop it with --classes.",
            )
        n_test = max(1, round(len(members) * test))
        n_validation = max(1, round(len(members) * validation))
        n_validation = min(n_validation, len(members) - n_test - 1)
        rest, test_part = train_test_split(members, test_size=n_test, random_state=seed)
        train_part, validation_part = train_test_split(
            rest, test_size=n_validation, random_state=seed
        )
        for split, part in zip(SPLITS, (train_part, validation_part, test_part), strict=True):
            for relative in part:
                assignment[relative] = split
    return assignment


def _split_given(
    checked: list[CheckedImage],
    classes: Sequence[str],
    given: dict[str, str],
    validation: float,
    test: float,
    seed: int,
) -> dict[str, str]:
    """The splits a divided source gives; a split it lacks (validation, test) is taken
    from each class's train images with its fraction, as :func:`_split` would."""
    from sklearn.model_selection import train_test_split

    assignment = {c.relative: given[c.relative] for c in checked}
    for name in classes:
        for split, fraction in (("test", test), ("validation", validation)):
            if split in given.values():
                continue
            train = sorted(
                c.relative
                for c in checked
                if c.class_name == name and assignment[c.relative] == "train"
            )
            if len(train) < 2:
                break
            count = min(max(1, round(len(train) * fraction)), len(train) - 1)
            _, taken = train_test_split(train, test_size=count, random_state=seed)
            for relative in taken:
                assignment[relative] = split
        for split in SPLITS:
            if not any(assignment[c.relative] == split for c in checked if c.class_name == name):
                raise DataError(
                    f"The class {name!r} has no usable image for the {split} split.",
                    hint="Every class needs images in train/ (two at least when a split is "
                    "taken from it) and in each split folder the source has.",
                )
    return assignment


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
    # Where each class's images are: (the source's split, or None to split; class; folder).
    places: list[tuple[str | None, str, Path]] = []
    ignored: list[str] = []
    if splits is None:
        folders, ignored = find_class_folders(source, classes)
        places = [(None, name, folder) for name, folder in folders.items()]
    else:
        level = next(iter(splits.values())).parent
        ignored = [
            folder.relative_to(source).as_posix()
            for folder in _subfolders(level)
            if folder not in splits.values()
        ]
        for split, split_folder in splits.items():
            folders, unused = find_class_folders(split_folder, classes)
            places += [(split, name, folder) for name, folder in folders.items()]
            ignored += [f"{split_folder.relative_to(source).as_posix()}/{name}" for name in unused]

    jobs: list[tuple[Path, str, str]] = []
    given: dict[str, str] = {}
    for given_split, name, folder in places:
        # A divided source's images are named from its split folder: train/<class>/<file>.
        prefix = f"{folder.parent.name}/{name}" if given_split else name
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                relative = f"{prefix}/{path.relative_to(folder).as_posix()}"
                jobs.append((path, relative, name))
                if given_split:
                    given[relative] = given_split
    on_total(len(jobs))

    def check(job: tuple[Path, str, str]) -> CheckedImage:
        result = check_image(*job)
        advance(1)
        return result

    # Decoding releases the GIL: threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(check, jobs))
    kept, copies = _without_copies([r for r in results if not r.reason], given)
    skipped = [{"source": r.relative, "reason": r.reason} for r in results if r.reason]
    skipped += copies
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
    try:
        if splits is None:
            assignment = _split(kept, classes, validation, test, seed)
        else:
            assignment = _split_given(kept, classes, given, validation, test, seed)
    except DataError as error:
        if not skipped:
            raise
        # Too few images may be too few usable ones: say which were not.
        raise DataError(
            f"{error.message} {len(skipped)} file(s) were skipped, e.g. "
            f"{skipped[0]['source']}: {skipped[0]['reason']}.",
            hint=error.hint,
        ) from None
    depth = 1 if splits is None else 2

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

    identity = json.dumps(
        {
            "classes": list(classes),
            "seed": seed,
            "fractions": [validation, test],
            "given_splits": sorted(splits) if splits else None,
            "files": [(f["path"], f["sha256"]) for f in files],
        },
        sort_keys=True,
    )
    dataset_id = hashlib.sha256(identity.encode()).hexdigest()[:12]
    counts = {
        split: {
            name: sum(1 for f in files if f["split"] == split and f["class"] == name)
            for name in classes
        }
        for split in SPLITS
    }
    manifest = {
        "format": MANIFEST_FORMAT,
        "dataset_id": dataset_id,
        "source": str(source),
        "classes": list(classes),
        "seed": seed,
        "fractions": {"validation": validation, "test": test},
        # A source divided already: its split folders, by split (a split it lacks was taken
        # from train with the fraction above).
        "given_splits": {split: folder.name for split, folder in splits.items()}
        if splits
        else None,
        "counts": counts,
        "ignored_folders": ignored,
        "skipped": skipped,
        "files": files,
    }

    target = out_dir if out_dir is not None else data_dir / "prepared" / dataset_id
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
            for entry in files:
                checked = by_relative[entry["source"]]
                destination = staging / entry["path"]
                destination.parent.mkdir(parents=True, exist_ok=True)
                if checked.converted is not None:
                    destination.write_bytes(checked.converted)
                else:
                    # A copy, never a link: nothing written here can reach the source.
                    copy_file(checked.source, destination)
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return PreparedDataset(target, manifest)
