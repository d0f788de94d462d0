"""What a finished fit leaves: the model (``.keras``, class names, a SavedModel export) in
``SM_MODEL_DIR``, and ``history.json``/``metrics.json`` in ``SM_OUTPUT_DATA_DIR``, with the
lines a person and tuning read.

Standard library, NumPy, TensorFlow and Keras only: this runs inside the training container.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from defects.training import contract, metric_log, metrics
from defects.training import model as models


def save_model(network: keras.Model, model_dir: Path, class_names: list[str]) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    network.save(model_dir / contract.KERAS_MODEL_FILE)
    (model_dir / contract.CLASS_NAMES_FILE).write_text(json.dumps(class_names))
    network.export(str(model_dir / contract.SAVED_MODEL_DIR / "1"), verbose=False)


def scores(
    network: keras.Model, images: tf.data.Dataset, labels: np.ndarray, class_names: list[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class figures and the confusion matrix of one split."""
    probabilities = network.predict(images, verbose=0)
    return metrics.classification_metrics(labels, np.argmax(probabilities, axis=1), class_names)


def write_records(
    output_dir: Path,
    history: dict[str, Any],
    training_record: dict[str, Any],
    results: dict[str, Any],
) -> None:
    """``history.json`` (per epoch, and the kept epoch) and ``metrics.json``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    epochs_run = training_record["epochs_run"]
    history_record = {
        "epoch": list(range(1, epochs_run + 1)),
        **history,
        "kept_epoch": training_record["kept_epoch"],
        "stop_reason": training_record["stop_reason"],
        # The training loss is of smoothed labels; the validation loss of the labels as given.
        "label_smoothing": models.LABEL_SMOOTHING,
    }
    (output_dir / contract.HISTORY_FILE).write_text(json.dumps(history_record, indent=2))
    (output_dir / contract.METRICS_FILE).write_text(json.dumps(results, indent=2))


def report(results: dict[str, Any], history: dict[str, Any], fit_seconds: float) -> None:
    """The closing lines: the scores for a person, the ``metric: final`` line for tuning."""
    line = (
        f"Validation accuracy {results['validation']['accuracy']:.4f}, "
        f"macro-F1 {results['validation']['macro_f1']:.4f}"
    )
    if "test" in results:
        line += (
            f"; test accuracy {results['test']['accuracy']:.4f}, "
            f"macro-F1 {results['test']['macro_f1']:.4f}"
        )
    print(f"{line}; fit took {fit_seconds:.1f} s.", flush=True)
    kept_epoch = results["training"]["kept_epoch"]
    val_losses = history.get("val_loss") or []
    final: dict[str, float | None] = {
        "val_accuracy": results["validation"]["accuracy"],
        "val_macro_f1": results["validation"]["macro_f1"],
        "val_loss": val_losses[kept_epoch - 1] if 0 < kept_epoch <= len(val_losses) else None,
    }
    print(metric_log.line("final", final), flush=True)
