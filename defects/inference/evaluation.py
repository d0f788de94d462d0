"""A model's metrics on a split of a prepared dataset, or on a folder of class folders:
``metrics.json`` and ``confusion.png`` in a folder of their own, and, for a job's model, the
photos its training saw counted and scored apart."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from defects.dataset.manifest import SPLITS, PreparedDataset, load_manifest
from defects.errors import DataError
from defects.inference.loading import LoadedModel, load_model, locate_model
from defects.inference.prediction import iter_predictions
from defects.training import contract


def _split_dir(data: Path, prepared: PreparedDataset | None, split: str) -> tuple[Path, str]:
    """The folder of ``split`` in ``data`` (``prepared``, when it is a prepared dataset), and
    what it is: the split's name, or ``all`` for a folder of class folders that is not
    divided into splits."""
    if split not in SPLITS:
        raise DataError(f"Unknown split {split!r}.", hint=f"Use one of: {', '.join(SPLITS)}.")
    if prepared is not None:
        return prepared.root / split, split
    if (data / split).is_dir():
        return data / split, split
    return data, "all"


def _evaluation_dir(
    base: Path, scope: str, data: Path, prepared: PreparedDataset | None, own: bool
) -> Path:
    """Where an evaluation goes by default: ``evaluation-<split>`` for the job's own
    dataset; for other data a folder of its own, named after it, so that evaluating on new
    photos never overwrites the job's own evaluation or another one."""
    if own:
        return base / f"evaluation-{scope}"
    if prepared is not None:
        name = prepared.dataset_id
    else:
        resolved = data.resolve()
        readable = re.sub(r"[^A-Za-z0-9._-]+", "_", resolved.name)[:40] or "data"
        name = f"{readable}-{hashlib.sha256(str(resolved).encode()).hexdigest()[:6]}"
    return base / f"evaluation-{scope}-{name}"


def _sha256_of_files(
    paths: list[Path], prepared: PreparedDataset | None, converted: bool
) -> dict[Path, str]:
    """Each photo's sha256 as a manifest records it: from ``prepared``'s manifest when the
    photos are a prepared dataset's, else of the file (of its converted copy, for a file
    that preparing converts, when the job's data held ``converted`` files)."""
    from defects.dataset.images import check_image

    if prepared is not None:
        recorded = {(prepared.root / f["path"]).resolve(): f["sha256"] for f in prepared.files()}
        if all(path.resolve() in recorded for path in paths):
            return {path: recorded[path.resolve()] for path in paths}
    hashes = {}
    for path in paths:
        hashes[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        if converted and path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            hashes[path] = check_image(path).sha256 or hashes[path]
    return hashes


def _seen_in_training(
    job_dataset: PreparedDataset, paths: list[Path], prepared: PreparedDataset | None
) -> dict[Path, str]:
    """The photos of ``paths`` that the job trained or validated on (the same bytes as a
    file of its train or validation split), with that split's name."""
    splits = {
        f["sha256"]: f["split"]
        for f in job_dataset.files()
        if f["split"] in ("train", "validation")
    }
    converted = any(f.get("converted") for f in job_dataset.files())
    hashes = _sha256_of_files(paths, prepared, converted)
    return {path: splits[digest] for path, digest in hashes.items() if digest in splits}


def _add_seen_in_training(
    metrics: dict[str, Any],
    job: str,
    own: Path | None,
    prepared: PreparedDataset | None,
    kept: list[Path],
    scores: Callable[[list[Path]], dict[str, Any]],
) -> None:
    """Record (and say) how many of the scored photos ``kept`` the job trained or validated
    on (its data is ``own``, the prepared dataset its record names), and the ``scores`` of
    the photos it never saw apart (None when it saw them all)."""
    from defects.console import log

    job_dataset = load_manifest(own) if own is not None and own.is_dir() else None
    if job_dataset is None:
        if own is not None:
            log.warning(
                "The data %s trained on is gone (%s): whether it trained on any of these "
                "photos cannot be told.",
                job,
                own,
            )
        return
    seen = _seen_in_training(job_dataset, kept, prepared)
    counts = {split: list(seen.values()).count(split) for split in ("train", "validation")}
    metrics["seen_in_training"] = counts
    if not seen:
        return
    unseen = [path for path in kept if path not in seen]
    metrics["unseen"] = scores(unseen) if unseen else None
    log.warning(
        "%s of the %s photos were in the job's own train (%s) or validation (%s) split, so the "
        "scores over all of them flatter the model; %s",
        len(seen),
        len(kept),
        counts["train"],
        counts["validation"],
        f"the {len(unseen)} it never saw are scored apart (unseen in metrics.json)."
        if unseen
        else "there is none it never saw.",
    )


def dataset_of_job(run_dir: Path) -> Path | None:
    """The prepared dataset the job in ``run_dir`` trained on, as its record names it."""
    from defects.jobs.records import json_object

    root = json_object(run_dir / "job.json").get("dataset_root")
    return Path(root) if isinstance(root, str) and root else None


@dataclass(frozen=True)
class Evaluation:
    """A model's metrics on one split, and the folder holding metrics.json and confusion.png."""

    metrics: dict[str, Any]
    out_dir: Path

    @property
    def accuracy(self) -> float:
        return float(self.metrics["accuracy"])

    @property
    def macro_f1(self) -> float:
        return float(self.metrics["macro_f1"])


def evaluate(
    model: str | Path | LoadedModel,
    data: str | Path | None = None,
    split: str = "test",
    out_dir: str | Path | None = None,
    on_total: Callable[[int], None] = lambda count: None,
    advance: Callable[[int], None] = lambda count: None,
) -> Evaluation:
    """Metrics of ``model`` (a job's name or folder, a ``model.tar.gz``...) on ``split`` of
    a prepared dataset (the job's own by default), or on every image of a folder of class
    folders; writes metrics.json and confusion.png to ``out_dir`` (default:
    ``<job>/evaluation-<split>``, or a folder named after other data). Files that cannot
    be used are skipped and listed in the metrics' ``skipped``; ``on_total`` learns how
    many images there are and ``advance`` counts them as they are classified.

    For a job's model the photos are compared with its data (by sha256): the metrics'
    ``seen_in_training`` counts those of its train and validation splits and, when there
    are any, ``unseen`` holds the metrics of the others alone (None if there are none)."""
    from defects.jobs.plots import plot_confusion
    from defects.jobs.records import write_json
    from defects.training.metrics import classification_metrics

    location = model.source if isinstance(model, LoadedModel) else locate_model(model)
    own = dataset_of_job(location) if location.is_dir() else None
    data = Path(data) if data is not None else own
    hint = (
        "Pass --data with a prepared dataset (`defects prepare SOURCE` makes one) or a "
        "folder of <class>/<image> files."
    )
    if data is None:
        raise DataError(f"No dataset is recorded for {location}.", hint=hint)
    is_own = own is not None and data.resolve() == own.resolve()
    if is_own and not data.is_dir():
        raise DataError(f"The dataset {location.name} trained on is gone: {data}.", hint=hint)
    prepared = load_manifest(data)
    folder, scope = _split_dir(data, prepared, split)
    loaded = model if isinstance(model, LoadedModel) else load_model(location)
    # Imports TensorFlow: only once load_model has started it quietly.
    from defects.training.data import list_images

    names = loaded.class_names
    paths, labels = list_images(folder, names)
    if not paths:
        raise DataError(f"No images of the classes {', '.join(names)} in {folder}.", hint=hint)
    truth = {Path(path): int(label) for path, label in zip(paths, labels, strict=True)}
    answers: dict[Path, int] = {}
    skipped: list[dict[str, str]] = []
    for prediction in iter_predictions(loaded, list(truth), on_total=on_total):
        advance(1)
        if prediction.error or prediction.label is None:
            skipped.append({"path": str(prediction.path), "error": prediction.error or ""})
        else:
            answers[prediction.path] = names.index(prediction.label)
    if not answers:
        raise DataError(
            f"None of the {len(truth)} images in {folder} can be read; the first: "
            f"{skipped[0]['path']}: {skipped[0]['error']}.",
            hint="`defects prepare` checks a folder and says what is wrong with each file.",
        )
    kept = [path for path in truth if path in answers]

    def scores(photos: list[Path]) -> dict[str, Any]:
        truths = np.asarray([truth[path] for path in photos], dtype=np.int32)
        return classification_metrics(
            truths, np.asarray([answers[path] for path in photos], dtype=np.int32), names
        )

    metrics = scores(kept)
    _add_seen_in_training(metrics, location.name, own, prepared, kept, scores)
    metrics["split"] = scope
    metrics["data"] = str(folder)
    metrics["skipped"] = skipped
    if out_dir is None:
        base = location if location.is_dir() else location.parent
        out_dir = _evaluation_dir(base, scope, data, prepared, is_own)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / contract.METRICS_FILE, metrics)
    plot_confusion(metrics, out_dir / "confusion.png", title=f"{location.name} ({scope})")
    return Evaluation(metrics, out_dir)
