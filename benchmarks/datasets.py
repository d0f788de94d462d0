"""The data the benchmarks run on: synthetic photos (cached between runs) and staging files.

Drawing 1920x1080 photos takes a quarter of a second each, so sets are kept in a cache
folder (``.cache/benchmarks`` by default, git-ignored) and reused. The cache key includes a
hash of the generator's source, so a change to ``defects/synth.py`` draws a fresh set.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from defects.dataset import synth
from defects.dataset.manifest import PreparedDataset, load_manifest
from defects.dataset.prepare import prepare

_CLASSES = ("good", "oil", "scratch", "stain")


def _generator_version() -> str:
    return hashlib.sha256(Path(synth.__file__).read_bytes()).hexdigest()[:8]


def synthetic_photos(
    data_dir: Path, per_class: int, width: int, height: int, seed: int = 0
) -> Path:
    """A folder of ``per_class`` synthetic photos per class, drawn once and then reused."""
    name = f"synth-{width}x{height}-n{per_class}-s{seed}-{_generator_version()}"
    target = data_dir / name
    if (target / ".complete").exists():
        return target
    partial = data_dir / (name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    synth.synthesize(partial, per_class=per_class, seed=seed, width=width, height=height)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    (target / ".complete").touch()
    return target


def full_size_jpegs(data_dir: Path, count: int) -> list[Path]:
    """``count`` synthetic 1920x1080 JPEGs, as the public dataset's defect photos are.

    The generator writes its ``good`` photos as PNGs (the public dataset does too, but they are
    only 20 of its 1,220 files), so the JPEG classes are drawn and the PNGs left out.
    """
    jpeg_classes = 3
    per_class = -(-count // jpeg_classes)
    folder = synthetic_photos(data_dir, per_class, 1920, 1080)
    # Take the classes in turn, so that a small count still covers every class.
    by_class = [sorted(folder.glob(f"{name}/*.jpg")) for name in _CLASSES]
    by_class = [paths for paths in by_class if paths]
    return [path for group in zip(*by_class, strict=False) for path in group][:count]


def prepared_photos(data_dir: Path, per_class: int, width: int, height: int) -> PreparedDataset:
    """Synthetic photos, checked and split as ``defects prepare`` does."""
    photos = synthetic_photos(data_dir, per_class, width, height)
    target = data_dir / f"prepared-{photos.name}"
    existing = load_manifest(target) if target.is_dir() else None
    if existing is not None:
        return existing
    shutil.rmtree(target, ignore_errors=True)
    return prepare(photos, out_dir=target)


def prepared_elpv(data_dir: Path, per_class: int | None = None) -> PreparedDataset:
    """ELPV's cells as ``functional``/``defective`` (all, or the first ``per_class`` of each),
    checked and split as ``defects prepare`` does. Raises ``elpv.ElpvMissing`` without the
    ``bench`` extra."""
    from benchmarks import elpv

    name = "elpv" if per_class is None else f"elpv-n{per_class}"
    folder = elpv.export(data_dir / name, per_class)
    return _prepared_once(folder, data_dir / f"prepared-{name}", elpv.CLASSES)


def prepared_elpv_few(data_dir: Path, quick: bool = False) -> PreparedDataset:
    """ELPV with 40 training and 10 validation cells of each class, tested on 600 others (300
    of each; in the quick form 6, 2 and 10). Raises ``elpv.ElpvMissing`` without the
    ``bench`` extra."""
    from benchmarks import elpv

    sizes = (6, 2, 10) if quick else (40, 10, 300)
    name = "elpv-few-" + "-".join(map(str, sizes))
    folder = elpv.export_few(data_dir / name, *sizes)
    return _prepared_once(folder, data_dir / f"prepared-{name}", elpv.CLASSES)


def staging_files(
    root: Path, count: int, smallest: int = 100_000, largest: int = 300_000, seed: int = 0
) -> PreparedDataset:
    """``count`` files of random bytes laid out and described like a prepared dataset.

    Random bytes are as hard for S3 as JPEGs (neither compresses) and cost nothing to make.
    Sizes are uniform between ``smallest`` and ``largest`` bytes, about what a full-size
    photo of the public dataset weighs.
    """
    rng = np.random.default_rng(seed)
    files = []
    for index in range(count):
        # 70/15/15 train/validation/test, four classes, as prepare would lay them out.
        fraction = index / count
        split = "train" if fraction < 0.7 else "validation" if fraction < 0.85 else "test"
        name = _CLASSES[index % len(_CLASSES)]
        relative = f"{split}/{name}/file_{index:05d}.jpg"
        contents = rng.bytes(int(rng.integers(smallest, largest + 1)))
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(contents)
        files.append(
            {
                "path": relative,
                "class": name,
                "split": split,
                "bytes": len(contents),
                "md5": hashlib.md5(contents, usedforsecurity=False).hexdigest(),
            }
        )
    identity = hashlib.sha256(json.dumps([f["md5"] for f in files]).encode()).hexdigest()[:12]
    manifest = {"format": 1, "dataset_id": identity, "files": files, "skipped": []}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return PreparedDataset(root, manifest)


def _prepared_once(folder: Path, target: Path, classes: tuple[str, ...]) -> PreparedDataset:
    """``folder`` prepared into ``target`` once; afterwards the prepared copy is reused."""
    existing = load_manifest(target) if target.is_dir() else None
    if existing is not None:
        return existing
    shutil.rmtree(target, ignore_errors=True)
    return prepare(folder, out_dir=target, classes=classes)
