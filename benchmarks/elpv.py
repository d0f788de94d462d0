"""The ELPV solar-cell images as a binary ``functional``/``defective`` class-folder dataset.

ELPV (Buerhop-Lutz et al. 2018, Deitsch et al. 2019) holds 2,624 grayscale 300x300
electroluminescence images of solar cells, each with an expert's defect probability (0,
1/3, 2/3 or 1). As in the paper's two-class evaluation, a cell is ``defective`` when that
probability is at least 0.5. The images come from the ``elpv-dataset`` package (the
``bench`` extra); they are CC BY-NC-SA 4.0, so they are exported into a cache folder outside
the repository and never committed.

``python -m benchmarks.elpv OUT_DIR`` writes the folders; ``defects run --data OUT_DIR``
trains on them.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path

CLASSES = ("functional", "defective")
DEFECTIVE_FROM = 0.5
# Published anchors (Deitsch et al. 2019, two classes, test accuracy).
PUBLISHED = {"SVM (KAZE/VGG features)": 0.8244, "VGG19, ImageNet-pretrained, GPU": 0.8842}


class ElpvMissing(Exception):
    """The ``elpv-dataset`` package is not installed."""


def _package_data() -> Path:
    try:
        root = resources.files("elpv_dataset")
    except ModuleNotFoundError as error:
        raise ElpvMissing(
            "The ELPV images come from the elpv-dataset package: pip install -e '.[bench]'."
        ) from error
    return Path(str(root)) / "data"


def labels(data: Path | None = None) -> list[tuple[str, float]]:
    """``(relative image path, defect probability)`` for every cell, in the package's order."""
    data = data or _package_data()
    rows = []
    with (data / "labels.csv").open() as handle:
        for fields in csv.reader(handle, delimiter=" ", skipinitialspace=True):
            if fields:
                rows.append((fields[0], float(fields[1])))
    return rows


def accuracy_by_rating(
    predictions: Iterable[tuple[Path, str | None]], ratings: Mapping[str, float]
) -> dict[str, dict[str, float | int]]:
    """Accuracy over the cells of each expert rating (0, 1/3, 2/3, 1): whether the errors lie
    on the cells the expert was unsure of, or on the ones they were sure of.

    ``predictions`` are ``(prepared image path, predicted class)``, the true class being the
    image's folder; ``ratings`` maps a cell's file name to its defect probability."""
    tally: dict[str, list[int]] = {}
    for path, predicted in predictions:
        rating = ratings.get(path.name)
        if rating is None:
            continue
        counts = tally.setdefault(f"{rating:.2f}", [0, 0])
        counts[0] += predicted == path.parent.name
        counts[1] += 1
    return {
        rating: {"correct": correct, "cells": cells, "accuracy": round(correct / cells, 4)}
        for rating, (correct, cells) in sorted(tally.items())
    }


def export(out_dir: Path, per_class: int | None = None) -> Path:
    """Hard-link (or copy) every cell (or the first ``per_class`` of each class) into
    ``out_dir/{functional,defective}/``; reused when complete."""
    marker = out_dir / ".complete"
    if marker.exists():
        return out_dir
    data = _package_data()
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for name in CLASSES:
        (partial / name).mkdir(parents=True)
    taken = dict.fromkeys(CLASSES, 0)
    for relative, probability in labels(data):
        name = CLASSES[1] if probability >= DEFECTIVE_FROM else CLASSES[0]
        if per_class is not None and taken[name] >= per_class:
            continue
        taken[name] += 1
        _link_or_copy(data / relative, partial / name / Path(relative).name)
    return _complete(partial, out_dir, marker)


def export_few(
    out_dir: Path, train: int = 40, validation: int = 10, test: int = 300, seed: int = 0
) -> Path:
    """A source divided into ``train/``, ``val/`` and ``test/``: ``train`` and
    ``validation`` cells of each class, and ``test`` others of each that the training never
    sees (``2 x test`` cells in all), drawn at random with ``seed``; reused when complete."""
    import random

    marker = out_dir / ".complete"
    if marker.exists():
        return out_dir
    data = _package_data()
    by_class: dict[str, list[str]] = {name: [] for name in CLASSES}
    for relative, probability in labels(data):
        by_class[CLASSES[1] if probability >= DEFECTIVE_FROM else CLASSES[0]].append(relative)
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    draw = random.Random(seed)
    for name, cells in by_class.items():
        chosen = draw.sample(cells, train + validation + test)
        parts = {
            "train": chosen[:train],
            "val": chosen[train : train + validation],
            "test": chosen[train + validation :],
        }
        for split, relatives in parts.items():
            (partial / split / name).mkdir(parents=True)
            for relative in relatives:
                _link_or_copy(data / relative, partial / split / name / Path(relative).name)
    return _complete(partial, out_dir, marker)


def _link_or_copy(source: Path, destination: Path) -> None:
    """A hard link to the package's cell where the file system allows one, else a copy."""
    try:
        destination.hardlink_to(source)
    except OSError:
        shutil.copyfile(source, destination)


def _complete(partial: Path, out_dir: Path, marker: Path) -> Path:
    """Move the finished export into place and mark it complete."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    partial.rename(out_dir)
    marker.touch()
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.elpv", description=__doc__)
    parser.add_argument("out_dir", type=Path, help="where the class folders go (outside the repo)")
    arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        folder = export(arguments.out_dir)
    except ElpvMissing as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    counts = {name: sum(1 for _ in (folder / name).iterdir()) for name in CLASSES}
    print(f"{folder}: " + ", ".join(f"{name} {count}" for name, count in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
