"""Pictures people would rather look at than JSON: learning curves and the confusion matrix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def figure_path(path: Path, name: str) -> Path:
    """Where a figure asked to go to ``path`` is written: ``path/name`` for a folder, a
    ``.png`` added when there is no suffix; a format matplotlib cannot write is refused
    before any work."""
    from defects.errors import ConfigError

    if path.is_dir():
        return path / name
    if not path.suffix:
        return path.with_suffix(".png")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    formats = FigureCanvasAgg.get_supported_filetypes()
    if path.suffix[1:].lower() not in formats:
        raise ConfigError(
            f"{path}: a figure cannot be written as {path.suffix}.",
            hint=f"End the name with one of: {', '.join('.' + kind for kind in sorted(formats))}.",
        )
    return path


def plot_curves(history: Mapping[str, Any], path: Path, title: str = "") -> Path:
    """Accuracy and loss per epoch, train against validation (and the validation macro-F1
    early stopping watches), with the epoch whose weights were kept marked."""
    epochs = list(history.get("epoch") or range(1, len(history.get("loss", [])) + 1))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for axis, metric, label in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        train = "train"
        if metric == "loss" and history.get("label_smoothing"):
            # Smoothed targets keep the training loss above zero: not comparable as is.
            train = f"train (labels smoothed {history['label_smoothing']:g})"
        for key, name, style in ((metric, train, "-o"), (f"val_{metric}", "validation", "-s")):
            values = history.get(key)
            if values:
                axis.plot(epochs[: len(values)], values, style, label=name, markersize=4)
        if metric == "accuracy" and history.get("val_macro_f1"):
            values = history["val_macro_f1"]
            axis.plot(epochs[: len(values)], values, ":", label="validation macro-F1")
        if history.get("kept_epoch"):
            axis.axvline(history["kept_epoch"], color="grey", linewidth=1, label="kept")
        axis.set_xlabel("epoch")
        axis.set_ylabel(label.lower())
        axis.set_title(label)
        axis.grid(alpha=0.3)
        axis.legend()
    if "accuracy" in history:
        axes[0].set_ylim(0, 1.02)
    if title:
        figure.suptitle(title)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_confusion(metrics: Mapping[str, Any], path: Path, title: str = "") -> Path:
    """The confusion matrix with counts and, per true class, the share of its images."""
    matrix = np.asarray(metrics["confusion_matrix"], dtype=int)
    names = list(metrics["class_names"])
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    figure, axis = plt.subplots(figsize=(5.6, 5), constrained_layout=True)
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for row in range(matrix.shape[0]):
        for column in range(matrix.shape[1]):
            color = "white" if shares[row, column] > 0.5 else "black"
            axis.text(
                column,
                row,
                f"{matrix[row, column]}\n{shares[row, column]:.0%}",
                ha="center",
                va="center",
                color=color,
                fontsize=9,
            )
    axis.set_xticks(range(len(names)), names, rotation=30)
    axis.set_yticks(range(len(names)), names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    accuracy = metrics.get("accuracy")
    heading = title or "Confusion matrix"
    if accuracy is not None:
        heading += f"\naccuracy {accuracy:.3f}, macro-F1 {metrics.get('macro_f1', 0):.3f}"
    axis.set_title(heading)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="share of true class")
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_comparison(histories: Mapping[str, Mapping[str, Sequence[float]]], path: Path) -> Path:
    """Every job's validation accuracy and loss per epoch, on one figure."""
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for axis, key, label in (
        (axes[0], "val_accuracy", "Validation accuracy"),
        (axes[1], "val_loss", "Validation loss"),
    ):
        for name, history in histories.items():
            values = history.get(key)
            if values:
                epochs = list(history.get("epoch") or range(1, len(values) + 1))
                axis.plot(epochs[: len(values)], values, "-o", label=name, markersize=3)
        axis.set_xlabel("epoch")
        axis.set_ylabel(label.lower())
        axis.set_title(label)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    axes[0].set_ylim(0, 1.02)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
