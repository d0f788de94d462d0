"""Model quality over several datasets in one run, each figure beside its anchors.

Every fit goes through the real entry point on a prepared dataset (the test split held out)
with the default hyperparameters, and beside it:

- ``before``: the settings the default had until it trained by the dataset (24 epochs at
  384x216, the last epoch's weights);
- ``article``: the tutorial's network (on the synthetic photos; on ELPV it is too slow to
  be an anchor worth its minutes);
- the majority class of the test split, and for ELPV the published figures.

Datasets: the synthetic photos ``defects run`` draws (280 per class, 640x360), the same
generator at 60 per class and at 60 per class in full 1920x1080, and ELPV's solar cells as
two classes (``benchmarks/elpv.py``; skipped with a reason when the ``bench`` extra is not
installed). Scores are on the test split: accuracy, macro-F1 and per-class recall; time is
the entry point's fit time; for ELPV the default's test accuracy is also given over the
cells of each expert rating (0, 1/3, 2/3, 1). ``mixed_precision`` times mixed bfloat16
against the float32 ``before`` run on the synthetic photos.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import datasets, elpv
from benchmarks.context import Context
from benchmarks.entrypoint import EntryPointRun, run_entry_point
from benchmarks.report import Result, skipped, times
from defects.dataset.manifest import PreparedDataset
from defects.training import contract

KEYS = {
    "quality_synthetic": "Quality: synthetic photos (defects run)",
    "quality_synthetic_60": "Quality: synthetic, 60 per class",
    "quality_synthetic_60_full": "Quality: synthetic, 60 per class, 1920x1080",
    "quality_elpv": "Quality: ELPV solar cells, 2 classes",
    "mixed_precision": "Precision: mixed_bfloat16 vs float32",
}
TARGETS = {
    "quality_synthetic": "test and validation >= 0.95, every recall >= 0.90",
    "quality_synthetic_60": "test accuracy >= 0.90",
    "quality_synthetic_60_full": "none (reported)",
    "quality_elpv": "test accuracy >= 0.88, macro-F1 >= 0.85, fit <= 600 s",
    "mixed_precision": "none (decides the CPU default)",
}
# The settings the default model trained with before it sized itself from the data.
BEFORE = {"epochs": 24, "image_size": "384x216"}


@dataclass(frozen=True)
class QualitySet:
    key: str
    # Synthetic photos per class and their size; None for ELPV.
    per_class: int | None
    width: int = 640
    height: int = 360
    article: bool = False


def _test_figures(job: EntryPointRun) -> dict[str, Any]:
    metrics = job.metrics
    scores = metrics.get("test") or metrics["validation"]
    training = metrics.get("training", {})
    return {
        "model": metrics["model"],
        "image_size": metrics["image_size"],
        "orientations": metrics.get("orientations", 1),
        "precision": metrics["precision"],
        "epochs_run": training.get("epochs_run", metrics.get("epochs")),
        "kept_epoch": training.get("kept_epoch"),
        "stop_reason": training.get("stop_reason"),
        "test_accuracy": scores["accuracy"],
        "test_macro_f1": scores["macro_f1"],
        "test_recall": {name: s["recall"] for name, s in scores["per_class"].items()},
        "validation_accuracy": metrics["validation"]["accuracy"],
        "validation_macro_f1": metrics["validation"]["macro_f1"],
        "validation_recall": {
            name: s["recall"] for name, s in metrics["validation"]["per_class"].items()
        },
        "fit_seconds": metrics["fit_seconds"],
        "train_images": metrics["train_images"],
        "test_images": scores["count"],
    }


def _line(name: str, figures: Mapping[str, Any]) -> str:
    recalls = " ".join(f"{c} {v:.2f}" for c, v in figures["test_recall"].items())
    return (
        f"{name}: accuracy {figures['test_accuracy']:.3f}, macro-F1 "
        f"{figures['test_macro_f1']:.3f} (recall {recalls}), {figures['fit_seconds']:.0f} s"
    )


def _by_rating(job: EntryPointRun, dataset: PreparedDataset) -> dict[str, Any]:
    """ELPV's test accuracy over the cells of each expert rating, from the saved model."""
    from defects.inference.prediction import predict

    ratings = {Path(relative).name: rating for relative, rating in elpv.labels()}
    found = predict(job.model_dir, dataset.root / "test")
    return elpv.accuracy_by_rating(((p.path, p.label) for p in found), ratings)


def _rating_note(figures: Mapping[str, Any]) -> str:
    """The sentence on accuracy by expert rating, when the run has it (ELPV's default)."""
    by_rating = figures.get("test_accuracy_by_rating")
    if not by_rating:
        return ""
    rows = (f"{rating} {row['accuracy']:.2f} ({row['cells']})" for rating, row in by_rating.items())
    return f" Test accuracy by the expert's defect probability (cells): {', '.join(rows)}."


def _majority(dataset: PreparedDataset) -> float:
    counts = dataset.counts["test"]
    return max(counts.values()) / max(1, sum(counts.values()))


def _channels(dataset: PreparedDataset) -> dict[str, Any]:
    return {name: dataset.root / name for name in contract.CHANNELS}


def quality_sets(quick: bool) -> list[QualitySet]:
    if quick:
        return [
            QualitySet("quality_synthetic", 8, article=True),
            QualitySet("quality_synthetic_60", 4),
            QualitySet("quality_synthetic_60_full", 4, 1920, 1080),
            QualitySet("quality_elpv", None),
        ]
    return [
        QualitySet("quality_synthetic", 280, article=True),
        QualitySet("quality_synthetic_60", 60),
        QualitySet("quality_synthetic_60_full", 60, 1920, 1080),
        QualitySet("quality_elpv", None),
    ]


def _prepared(context: Context, spec: QualitySet) -> PreparedDataset:
    if spec.per_class is not None:
        return datasets.prepared_photos(context.data_dir, spec.per_class, spec.width, spec.height)
    # CI-sized: a few cells of each class.
    return datasets.prepared_elpv(context.data_dir, 12 if context.quick else None)


def _met(key: str, default: Mapping[str, Any]) -> bool | None:
    if key == "quality_synthetic":
        recalls = [*default["test_recall"].values(), *default["validation_recall"].values()]
        return (
            default["test_accuracy"] >= 0.95
            and default["validation_accuracy"] >= 0.95
            and min(recalls) >= 0.90
        )
    if key == "quality_synthetic_60":
        return bool(default["test_accuracy"] >= 0.90)
    if key == "quality_elpv":
        return bool(
            default["test_accuracy"] >= 0.88
            and default["test_macro_f1"] >= 0.85
            and default["fit_seconds"] <= 600
        )
    return None


def run(context: Context) -> list[Result]:
    # Quick mode bounds every run to a few epochs: it checks the plumbing, not the figures.
    base: dict[str, Any] = dict(contract.hyperparameter_defaults())
    before = {**base, **BEFORE}
    if context.quick:
        base["epochs"] = before["epochs"] = 2
    results: list[Result] = []
    before_synthetic: dict[str, Any] | None = None
    for spec in quality_sets(context.quick):
        try:
            dataset = _prepared(context, spec)
        except elpv.ElpvMissing as error:
            results.append(
                skipped(spec.key, "quality", KEYS[spec.key], TARGETS[spec.key], str(error))
            )
            continue
        variants = {"default": base, "before": before}
        if spec.article:
            variants["article"] = {**before, "model": "article"}
        figures: dict[str, dict[str, Any]] = {}
        for name, hyperparameters in variants.items():
            context.say(f"quality: {spec.key}, {name}")
            label = f"{spec.key}-{name}"
            job = run_entry_point(
                context.work_dir / label,
                _channels(dataset),
                hyperparameters,
                context.log_dir / f"{label}.log",
            )
            figures[name] = _test_figures(job)
            if spec.key == "quality_elpv" and name == "default":
                figures[name]["test_accuracy_by_rating"] = _by_rating(job, dataset)
        default = figures["default"]
        majority = _majority(dataset)
        anchors = [_line(name, figures[name]) for name in variants if name != "default"]
        anchors.append(f"majority class: accuracy {majority:.3f}")
        if spec.key == "quality_elpv":
            anchors += [f"{name}: {value:.4f}" for name, value in elpv.PUBLISHED.items()]
        ratio = default["test_accuracy"] / figures["before"]["test_accuracy"]
        if spec.key == "quality_synthetic":
            before_synthetic = figures["before"]
        results.append(
            Result(
                key=spec.key,
                benchmark="quality",
                title=KEYS[spec.key],
                measured=_line("default", default),
                baseline="; ".join(anchors),
                ratio=ratio,
                ratio_text=f"{times(ratio)} accuracy of before",
                target=TARGETS[spec.key],
                # Two epochs on a few images say nothing about the targets.
                met=None if context.quick else _met(spec.key, default),
                figures={
                    **figures,
                    "majority_accuracy": round(majority, 4),
                    "published": elpv.PUBLISHED if spec.key == "quality_elpv" else {},
                    "dataset_id": dataset.dataset_id,
                    "counts": dataset.counts,
                },
                note=(
                    f"default settled on {default['image_size']} px and kept epoch "
                    f"{default['kept_epoch']} of {default['epochs_run']} "
                    f"({default['stop_reason']}); validation accuracy "
                    f"{default['validation_accuracy']:.3f}.{_rating_note(default)}"
                ),
            )
        )
    results.append(_mixed_precision(context, before, before_synthetic))
    return results


def _mixed_precision(
    context: Context, before: Mapping[str, Any], float32: dict[str, Any] | None
) -> Result:
    if float32 is None:
        return skipped(
            "mixed_precision",
            "quality",
            KEYS["mixed_precision"],
            TARGETS["mixed_precision"],
            "the synthetic float32 run did not happen",
        )
    spec = quality_sets(context.quick)[0]
    dataset = _prepared(context, spec)
    context.say("quality: mixed_bfloat16")
    job = run_entry_point(
        context.work_dir / "mixed-bfloat16",
        _channels(dataset),
        {**before, "precision": "mixed_bfloat16"},
        context.log_dir / "quality-mixed-bfloat16.log",
    )
    bf16 = _test_figures(job)
    speed_ratio = float32["fit_seconds"] / bf16["fit_seconds"]
    faster = "faster" if speed_ratio > 1 else "slower"
    return Result(
        key="mixed_precision",
        benchmark="quality",
        title=KEYS["mixed_precision"],
        measured=f"bf16: fit {bf16['fit_seconds']:.0f} s, accuracy {bf16['test_accuracy']:.3f}",
        baseline=(
            f"fp32: fit {float32['fit_seconds']:.0f} s, accuracy {float32['test_accuracy']:.3f}"
        ),
        ratio=speed_ratio,
        ratio_text=f"{times(speed_ratio)} speed",
        target=TARGETS["mixed_precision"],
        met=None,
        figures={"float32": float32, "mixed_bfloat16": bf16},
        note=(
            f"mixed_bfloat16 is {speed_ratio:.2f}x as fast ({faster}) at "
            f"{before['image_size']}, {before['epochs']} epochs; `--precision auto` picks "
            "float32 on CPUs."
        ),
    )
