"""Using a trained model: evaluate it on a prepared split, or classify single photos.

A model is any backend's artifact: a ``runs/<job>/`` folder, a ``model.tar.gz``, a folder
holding ``model.keras`` and ``class_names.json``, or the ``.keras`` file itself. Photos go
through the same decode-and-resize graph as in training, so full-size photos work.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from defects.archives import safe_extract
from defects.dataset.prepare import SPLITS, check_image, load_manifest
from defects.errors import DataError
from defects.training import contract


@dataclass
class LoadedModel:
    model: Any
    class_names: list[str]
    image_shape: tuple[int, int]
    source: Path
    _temporary: Any = field(default=None, repr=False)


def _model_dir(location: Path) -> tuple[Path, Any]:
    """The folder holding model.keras for any accepted form of ``location``."""
    if not location.exists():
        raise DataError(
            f"{location} does not exist.",
            hint="Give a job folder under runs/, a model.tar.gz, a model folder or a .keras file.",
        )
    if location.is_file() and location.name.endswith((".tar.gz", ".tgz")):
        temporary = tempfile.TemporaryDirectory(prefix="defects-model-")
        folder = Path(temporary.name) / "model"
        try:
            safe_extract(location, folder)
        except DataError:
            temporary.cleanup()
            raise
        return folder, temporary
    if location.is_file():
        return location.parent, None
    for candidate in (location, location / "model"):
        if (candidate / contract.KERAS_MODEL_FILE).is_file():
            return candidate, None
    if (location / contract.MODEL_ARCHIVE).is_file():
        return _model_dir(location / contract.MODEL_ARCHIVE)
    raise DataError(
        f"No {contract.KERAS_MODEL_FILE} found in {location}.",
        hint="Point at a finished job's folder (runs/<job>) or at its model.tar.gz.",
    )


def load_model(location: Path) -> LoadedModel:
    # The archive is checked before Keras and TensorFlow take seconds to import.
    folder, temporary = _model_dir(location)

    from defects.tfnoise import quiet_tensorflow_start

    with quiet_tensorflow_start():
        import keras
        import tensorflow as tf

        # The first device query is when TensorFlow looks for a GPU (and says so).
        tf.config.list_logical_devices()

    model_file = location if location.suffix == ".keras" else folder / contract.KERAS_MODEL_FILE
    names_file = folder / contract.CLASS_NAMES_FILE
    if not model_file.is_file() or not names_file.is_file():
        raise DataError(
            f"{folder} lacks {contract.KERAS_MODEL_FILE} or {contract.CLASS_NAMES_FILE}.",
            hint="Point at a finished job's folder (runs/<job>) or at its model.tar.gz.",
        )
    model = keras.models.load_model(model_file)
    class_names = json.loads(names_file.read_text())
    image_shape = (int(model.input_shape[1]), int(model.input_shape[2]))
    return LoadedModel(model, class_names, image_shape, location, temporary)


@dataclass(frozen=True)
class Prediction:
    path: Path
    label: str | None
    probabilities: dict[str, float]
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        if self.error:
            return {"path": str(self.path), "error": self.error}
        return {"path": str(self.path), "class": self.label, "probabilities": self.probabilities}


def predict(model: Path | LoadedModel, images: list[Path]) -> list[Prediction]:
    """Classify each photo; an unusable file gets its reason instead of a class."""
    loaded = model if isinstance(model, LoadedModel) else load_model(model)

    import tensorflow as tf

    from defects.training.data import decode_and_resize

    results: list[Prediction] = []
    for path in images:
        checked = check_image(path, path.name)
        if checked.reason:
            results.append(Prediction(path, None, {}, error=checked.reason))
            continue
        contents = checked.converted if checked.converted is not None else path.read_bytes()
        pixels = decode_and_resize(tf.constant(contents), loaded.image_shape)
        probabilities = loaded.model.predict(pixels[tf.newaxis], verbose=0)[0]
        label = loaded.class_names[int(np.argmax(probabilities))]
        results.append(
            Prediction(
                path,
                label,
                {
                    name: round(float(p), 6)
                    for name, p in zip(loaded.class_names, probabilities, strict=True)
                },
            )
        )
    return results


def _split_dir(data: Path, split: str) -> Path:
    if split not in SPLITS:
        raise DataError(f"Unknown split {split!r}.", hint=f"Use one of: {', '.join(SPLITS)}.")
    dataset = load_manifest(data)
    if dataset is not None:
        return dataset.root / split
    if (data / split).is_dir():
        return data / split
    return data


def dataset_of_job(run_dir: Path) -> Path | None:
    record = run_dir / "job.json"
    if record.is_file():
        root = json.loads(record.read_text()).get("dataset_root")
        if root and Path(root).is_dir():
            return Path(root)
    return None


def evaluate(
    model: Path, data: Path | None = None, split: str = "test", out_dir: Path | None = None
) -> tuple[dict[str, Any], Path]:
    """Metrics of ``model`` on ``split`` of a prepared dataset; writes metrics.json and
    confusion.png to ``out_dir`` (default: ``<job>/evaluation-<split>``)."""
    loaded = load_model(model)

    from defects.plots import plot_confusion
    from defects.training.data import list_images, make_dataset
    from defects.training.metrics import classification_metrics

    if data is None:
        data = dataset_of_job(model) if model.is_dir() else None
        if data is None:
            raise DataError(
                f"No dataset is recorded for {model}.",
                hint="Pass --data with a prepared dataset (see `defects prepare`).",
            )
    folder = _split_dir(data, split)
    paths, labels = list_images(folder, loaded.class_names)
    if not paths:
        raise DataError(
            f"No images of the classes {', '.join(loaded.class_names)} in {folder}.",
            hint="Pass --data with a prepared dataset or a folder of <class>/<image> files.",
        )
    dataset = make_dataset(paths, labels, loaded.image_shape, batch_size=32)
    probabilities = loaded.model.predict(dataset, verbose=0)
    metrics = classification_metrics(labels, np.argmax(probabilities, axis=1), loaded.class_names)
    metrics["split"] = split
    metrics["data"] = str(folder)
    if out_dir is None:
        base = model if model.is_dir() else model.parent
        out_dir = base / f"evaluation-{split}"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / contract.METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    plot_confusion(metrics, out_dir / "confusion.png", title=f"{model.name} ({split})")
    return metrics, out_dir
