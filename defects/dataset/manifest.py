"""A prepared dataset: its ``manifest.json`` (classes, splits, counts, every file with its
sha256, every skipped file with the reason) and the folder it describes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defects.errors import DataError

SPLITS = ("train", "validation", "test")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1


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


def build_manifest(
    source: Path,
    files: list[dict[str, Any]],
    classes: Sequence[str],
    seed: int,
    fractions: tuple[float, float],
    splits: dict[str, Path] | None,
    ignored: list[str],
    skipped: list[dict[str, str]],
) -> dict[str, Any]:
    """The manifest of ``files`` (one entry per kept image, with its split); its dataset id
    is a hash of what decides the prepared folder's content, so an identical preparation is
    recognised and reused."""
    validation, test = fractions
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
    counts = {
        split: {
            name: sum(1 for f in files if f["split"] == split and f["class"] == name)
            for name in classes
        }
        for split in SPLITS
    }
    return {
        "format": MANIFEST_FORMAT,
        "dataset_id": hashlib.sha256(identity.encode()).hexdigest()[:12],
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
