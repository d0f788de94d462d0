"""A trained model found and loaded (evaluating it is :mod:`defects.inference.evaluation`,
classifying photos :mod:`defects.inference.prediction`).

A model is any backend's artifact: a job's name or its ``runs/<job>/`` folder, a
``model.tar.gz``, a folder holding ``model.keras`` and ``class_names.json``, or the
``.keras`` file itself. Photos go through the same decode-and-resize graph as in training,
so full-size photos work.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
