"""Using a trained model: load it, and evaluate it on a prepared split (classifying photos
is :mod:`defects.inference.prediction`).

A model is any backend's artifact: a job's name or its ``runs/<job>/`` folder, a
``model.tar.gz``, a folder holding ``model.keras`` and ``class_names.json``, or the
``.keras`` file itself. Photos go through the same decode-and-resize graph as in training,
so full-size photos work.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from defects.dataset.manifest import SPLITS, PreparedDataset, load_manifest
from defects.errors import DataError, JobNotFound
from defects.storage.archives import safe_extract
from defects.training import contract


@dataclass
class LoadedModel:
    model: Any
    class_names: list[str]
    image_shape: tuple[int, int]
    source: Path
    _temporary: Any = field(default=None, repr=False)


def locate_model(model: str | Path, runs_dir: Path | None = None) -> Path:
    """``model`` as a path: itself when it exists, else the job of that name (or the newest
    job, for ``latest``) under ``runs_dir`` (the resolved setting by default)."""
    path = Path(model)
    if path.exists():
        return path
    if runs_dir is None:
        from defects.settings import resolve

        runs_dir = resolve().runs_dir
    from defects.jobs.listing import find_job
    from defects.jobs.records import LATEST

    if str(model) == LATEST:
        return _latest_model(runs_dir)
    found = find_job(runs_dir, str(model))
    if found.is_dir():
        return found
    raise JobNotFound(
        f"No job or model {str(model)!r}: neither {path} nor {found} exists.",
        hint="Give a job's name or folder under runs/ (or latest), a model.tar.gz, a model "
        "folder or a .keras file.",
    )


def _model_candidates(folder: Path) -> tuple[Path, ...]:
    """Where a model can be in ``folder`` (a model folder or a job's), in the order tried."""
    return (
        folder / contract.KERAS_MODEL_FILE,
        folder / contract.MODEL_PATH / contract.KERAS_MODEL_FILE,
        folder / contract.MODEL_ARCHIVE,
    )


def _latest_model(runs_dir: Path) -> Path:
    """The folder of the newest job that has a model (after a tuning job, its best trial): a
    newer job still running, failed or interrupted is passed over, and said so."""
    from defects.console import log
    from defects.jobs.listing import best_of, newest_jobs

    jobs = newest_jobs(runs_dir)
    for index, job in enumerate(jobs):
        if any(path.is_file() for path in _model_candidates(job.run_dir)):
            why = []
            tuning = best_of(job.run_dir, runs_dir)
            if tuning is not None:
                why.append(f"the best trial of tuning job {tuning}")
            if index:
                newer = ", ".join(f"{newer.name} {newer.status}" for newer in jobs[:index])
                why.append(f"the newest job with one ({index} newer without one: {newer})")
            if why:
                log.info("Using the model of %s, %s.", job.name, "; ".join(why))
            return job.run_dir
    raise DataError(
        f"None of the {len(jobs)} job(s) in {runs_dir} has a model yet."
        if jobs
        else f"There are no jobs in {runs_dir}, so none has a model.",
        hint="Train one with `defects run`, or give a model.tar.gz, a model folder or a "
        ".keras file (--runs-dir for another runs folder).",
    )


def _model_dir(location: Path) -> tuple[Path, Path, Any]:
    """For any accepted form of ``location``: the model file, the folder holding it and
    class_names.json, and the temporary folder an archive was unpacked into (or None)."""
    if location.is_file() and location.name.endswith((".tar.gz", ".tgz")):
        temporary = tempfile.TemporaryDirectory(prefix="defects-model-")
        folder = Path(temporary.name) / "model"
        try:
            safe_extract(location, folder)
            return (*_model_files(folder / contract.KERAS_MODEL_FILE, folder), temporary)
        except DataError:
            temporary.cleanup()
            raise
    if location.is_file():
        folder = location.parent
        model_file = location if location.suffix == ".keras" else folder / contract.KERAS_MODEL_FILE
        return (*_model_files(model_file, folder), None)
    for candidate in _model_candidates(location):
        if candidate.is_file():
            return _model_dir(candidate)
    raise _no_model(location)


def _no_model(folder: Path) -> DataError:
    return DataError(
        f"No {contract.KERAS_MODEL_FILE} found in {folder}.",
        hint="Point at a finished job's folder (runs/<job>) or at its model.tar.gz.",
    )


def _model_files(model_file: Path, folder: Path) -> tuple[Path, Path]:
    """``model_file`` and ``folder``, once both the model and its class names (saved beside
    it, not in it) are there."""
    if not model_file.is_file():
        raise _no_model(folder)
    if not (folder / contract.CLASS_NAMES_FILE).is_file():
        raise DataError(
            f"{model_file.name} has no {contract.CLASS_NAMES_FILE} beside it in {folder}: "
            "the class names are saved there, not in the model.",
            hint="Copy class_names.json from the job's model/ folder beside the model, or "
            "point at the job's folder (runs/<job>) or its model.tar.gz.",
        )
    return model_file, folder


def load_model(model: str | Path) -> LoadedModel:
    """Load ``model`` (a job's name or folder, a ``model.tar.gz``, a model folder or a
    ``.keras`` file) with its class names."""
    location = locate_model(model)
    # The archive is checked before Keras and TensorFlow take seconds to import.
    model_file, folder, temporary = _model_dir(location)

    from defects.console.tfnoise import import_tensorflow, quiet_tensorflow_start

    import_tensorflow()

    # The model's own layers (the orientation mean of square inputs) must be registered.
    import defects.training.model  # noqa: F401

    try:
        network = _load_network(model_file)
        image_shape = _image_shape(network, model_file)
        class_names = _class_names(folder / contract.CLASS_NAMES_FILE, network.output_shape[-1])
        with quiet_tensorflow_start():
            # The first answer is when oneDNN says it has no kernel for uint8 pixels (on
            # some CPUs): it is given here, to a blank image, not between the answers.
            network.predict_on_batch(np.zeros((1, *image_shape, 3), dtype="uint8"))
    except BaseException:
        if temporary is not None:
            temporary.cleanup()
        raise
    return LoadedModel(network, class_names, image_shape, location, temporary)


def _load_network(model_file: Path) -> Any:
    import keras

    try:
        return keras.models.load_model(model_file)
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds for a damaged file.
        raise DataError(
            f"{model_file} cannot be loaded: {error}",
            hint="A job's model.tar.gz holds the model as the training saved it: point at "
            "it (runs/<job>/model.tar.gz).",
            headline="the model cannot be loaded",
        ) from error


def _image_shape(network: Any, model_file: Path) -> tuple[int, int]:
    """The (height, width) of the RGB images ``network`` classifies, or why it cannot be
    used: this tool's models take images of one size and answer a probability per class."""
    inputs, outputs = network.input_shape, network.output_shape
    if (
        isinstance(inputs, tuple)
        and len(inputs) == 4
        and inputs[3] == 3
        and all(isinstance(side, int) and side > 0 for side in inputs[1:3])
        and isinstance(outputs, tuple)
        and len(outputs) == 2
        and isinstance(outputs[1], int)
    ):
        return inputs[1], inputs[2]
    raise DataError(
        f"{model_file} is not a model this tool can use: it takes {inputs} and answers "
        f"{outputs}, where a classifier trained here takes (None, height, width, 3) RGB "
        "images and answers (None, classes).",
        hint="Point at a model that `defects train` made: a job's folder or its model.tar.gz.",
        headline="the model cannot be loaded",
    )


def _class_names(path: Path, classes: int) -> list[str]:
    """The class names saved beside a model: one name for each of its ``classes`` outputs."""
    try:
        names = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        names = error
    if not (
        isinstance(names, list)
        and len(names) == classes
        and all(isinstance(name, str) and name for name in names)
    ):
        raise DataError(
            f"{path} does not hold the model's {classes} class names (a JSON list of "
            "strings, in the order of the model's outputs).",
            hint="A job's model.tar.gz holds it as the training saved it: point at it "
            "(runs/<job>/model.tar.gz).",
            headline="the model cannot be loaded",
        )
    return names


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
    from defects.dataset.prepare import check_image

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
    from defects.inference.prediction import iter_predictions
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
