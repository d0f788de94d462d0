"""Model quality over several datasets in one run, each figure beside its anchors.

Every fit goes through the real entry point on a prepared dataset (the test split held out)
with the default hyperparameters, and beside it, on the same split:

- ``pretrained``: the ImageNet-pretrained network with its recipe (when it is not the
  default already);
- ``frozen``: the pretrained backbone's features and a classifier on them alone, no
  fine-tuning (benchmarks/frozen.py);
- ``jumpstart``: a JumpStart-like anchor: the whole pretrained network, 3 epochs, Adam at
  0.001, label smoothing 0.1 (after the recipe's classifier warm start);
- ``scratch``: the network trained from scratch, with its own defaults;
- ``article``: the tutorial's network (on the synthetic photos; on ELPV it is too slow to
  be an anchor worth its minutes);
- the majority class of the test split, and for ELPV the published figures.

Datasets: the synthetic photos ``defects run`` draws (280 per class, 640x360), the same
generator at 60 per class at 640x360 and in full 1920x1080, ELPV's solar cells as two
classes (all of them, 70/15/15), and ELPV with 40 training cells per class tested on 600
cells the training never saw (``benchmarks/elpv.py``; ELPV is skipped with a reason
without the ``bench`` extra). Scores are on the test split: accuracy, macro-F1 and
per-class recall; time is the entry point's fit time, with its training images per second;
for ELPV the default's test accuracy is also given over the cells of each expert rating.
``mixed_precision`` times mixed bfloat16 against float32 (the network from scratch, its
former fixed settings) on the synthetic photos.
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
    "quality_elpv_few": "Quality: ELPV, 40 training cells per class, 600 tested",
    "mixed_precision": "Precision: mixed_bfloat16 vs float32",
}
TARGETS = {
    "quality_synthetic": "test and validation >= 0.95, every recall >= 0.90",
    "quality_synthetic_60": "test accuracy >= 0.90",
    "quality_synthetic_60_full": "test accuracy >= 0.95",
    "quality_elpv": "test accuracy >= 0.90, macro-F1 >= 0.88, fit <= 600 s",
    "quality_elpv_few": "test accuracy >= 0.80",
    "mixed_precision": "none (decides the CPU default)",
}
# The from-scratch network's former fixed settings (the mixed-precision comparison's).
BEFORE = {"epochs": 24, "image_size": "384x216", "model": "scratch"}
PRETRAINED = "efficientnet_lite0"
# JumpStart's TF image classification defaults, on our pretrained network: the whole network
# 3 epochs at Adam 0.001 (the recipe fine-tunes at a tenth of learning_rate).
JUMPSTART = {"model": PRETRAINED, "epochs": 3, "learning_rate": 0.01}


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
        "train_images_per_second": metrics.get("train_images_per_second"),
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
            QualitySet("quality_elpv_few", None),
        ]
    return [
        QualitySet("quality_synthetic", 280, article=True),
        QualitySet("quality_synthetic_60", 60),
        QualitySet("quality_synthetic_60_full", 60, 1920, 1080),
        QualitySet("quality_elpv", None),
        QualitySet("quality_elpv_few", None),
    ]


def _prepared(context: Context, spec: QualitySet) -> PreparedDataset:
    if spec.per_class is not None:
        return datasets.prepared_photos(context.data_dir, spec.per_class, spec.width, spec.height)
    if spec.key == "quality_elpv_few":
        return datasets.prepared_elpv_few(context.data_dir, context.quick)
    # CI-sized: a few cells of each class.
    return datasets.prepared_elpv(context.data_dir, 12 if context.quick else None)


def _met(key: str, default: Mapping[str, Any]) -> bool | None:
    accuracy = default["test_accuracy"]
    if key == "quality_synthetic":
        recalls = [*default["test_recall"].values(), *default["validation_recall"].values()]
        return accuracy >= 0.95 and default["validation_accuracy"] >= 0.95 and min(recalls) >= 0.90
    if key == "quality_synthetic_60":
        return bool(accuracy >= 0.90)
    if key == "quality_synthetic_60_full":
        return bool(accuracy >= 0.95)
    if key == "quality_elpv":
        return bool(
            accuracy >= 0.90 and default["test_macro_f1"] >= 0.88 and default["fit_seconds"] <= 600
        )
    if key == "quality_elpv_few":
        return bool(accuracy >= 0.80)
    return None


def _weights_channel(context: Context) -> Path:
    """The pretrained channel, as the host stages it."""
    import shutil

    from defects.dataset.steps import weights_files

    folder = context.work_dir / "pretrained-channel"
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in weights_files([PRETRAINED], context.data_dir).items():
        shutil.copyfile(path, folder / name)
    return folder


def _variants(spec: QualitySet, base: dict[str, Any], quick: bool) -> dict[str, dict[str, Any]]:
    variants = {"default": base}
    if base["model"] != PRETRAINED:
        variants["pretrained"] = {**base, "model": PRETRAINED}
    variants["jumpstart"] = {**base, **JUMPSTART, **({"epochs": 1} if quick else {})}
    if base["model"] != "scratch":
        variants["scratch"] = {**base, "model": "scratch"}
    if spec.article:
        variants["article"] = {**base, **BEFORE, "model": "article"}
    return variants


def _measure(
    context: Context, spec: QualitySet, dataset: PreparedDataset, base: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Every variant's figures on ``dataset``, the frozen baseline's among them."""
    from benchmarks.frozen import frozen_figures
    from defects.pipeline.request import resolve_image_size

    channels = {**_channels(dataset), contract.PRETRAINED_CHANNEL: _weights_channel(context)}
    figures: dict[str, dict[str, Any]] = {}
    for name, hyperparameters in _variants(spec, base, context.quick).items():
        context.say(f"quality: {spec.key}, {name}")
        label = f"{spec.key}-{name}"
        job = run_entry_point(
            context.work_dir / label, channels, hyperparameters, context.log_dir / f"{label}.log"
        )
        figures[name] = _test_figures(job)
        if spec.key == "quality_elpv" and name == "default":
            figures[name]["test_accuracy_by_rating"] = _by_rating(job, dataset)
    context.say(f"quality: {spec.key}, frozen features")
    size = resolve_image_size({"image_size": contract.AUTO, "model": PRETRAINED}, dataset)[
        "image_size"
    ]
    figures["frozen"] = frozen_figures(
        dataset,
        channels[contract.PRETRAINED_CHANNEL] / contract.weights_name(PRETRAINED),
        contract.image_shape(size),
    )
    return figures


def run(context: Context) -> list[Result]:
    # Quick mode bounds every run to a few epochs: it checks the plumbing, not the figures.
    base: dict[str, Any] = dict(contract.hyperparameter_defaults())
    before = {**base, **BEFORE}
    if context.quick:
        base["epochs"] = before["epochs"] = 2
    results: list[Result] = []
    for spec in quality_sets(context.quick):
        try:
            dataset = _prepared(context, spec)
        except elpv.ElpvMissing as error:
            results.append(
                skipped(spec.key, "quality", KEYS[spec.key], TARGETS[spec.key], str(error))
            )
            continue
        figures = _measure(context, spec, dataset, base)
        results.append(_quality_result(context, spec, dataset, figures))
    results.append(_mixed_precision(context, before))
    return results


def _quality_result(
    context: Context,
    spec: QualitySet,
    dataset: PreparedDataset,
    figures: dict[str, dict[str, Any]],
) -> Result:
    default = figures["default"]
    majority = _majority(dataset)
    anchors = [_line(name, found) for name, found in figures.items() if name != "default"]
    anchors.append(f"majority class: accuracy {majority:.3f}")
    if spec.key.startswith("quality_elpv"):
        anchors += [f"{name}: {value:.4f}" for name, value in elpv.PUBLISHED.items()]
    scratch = figures.get("scratch", default)
    ratio = default["test_accuracy"] / max(1e-9, scratch["test_accuracy"])
    return Result(
        key=spec.key,
        benchmark="quality",
        title=KEYS[spec.key],
        measured=_line("default", default),
        baseline="; ".join(anchors),
        ratio=ratio,
        ratio_text=f"{times(ratio)} accuracy of scratch",
        target=TARGETS[spec.key],
        # Two epochs on a few images say nothing about the targets.
        met=None if context.quick else _met(spec.key, default),
        figures={
            **figures,
            "majority_accuracy": round(majority, 4),
            "published": elpv.PUBLISHED if spec.key.startswith("quality_elpv") else {},
            "dataset_id": dataset.dataset_id,
            "counts": dataset.counts,
        },
        note=(
            f"default ({default['model']}) settled on {default['image_size']} px and kept "
            f"epoch {default['kept_epoch']} of {default['epochs_run']} "
            f"({default['stop_reason']}); validation accuracy "
            f"{default['validation_accuracy']:.3f}; {default['train_images_per_second']} "
            f"train img/s.{_rating_note(default)}"
        ),
    )


def _mixed_precision(context: Context, before: Mapping[str, Any]) -> Result:
    spec = quality_sets(context.quick)[0]
    dataset = _prepared(context, spec)
    found = {}
    for precision in ("float32", "mixed_bfloat16"):
        context.say(f"quality: {precision}")
        job = run_entry_point(
            context.work_dir / f"precision-{precision}",
            _channels(dataset),
            {**before, "precision": precision},
            context.log_dir / f"quality-{precision}.log",
        )
        found[precision] = _test_figures(job)
    float32, bf16 = found["float32"], found["mixed_bfloat16"]
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
        figures=found,
        note=(
            f"mixed_bfloat16 is {speed_ratio:.2f}x as fast ({faster}) for the network from "
            f"scratch at {before['image_size']}, {before['epochs']} epochs; `--precision auto` "
            "picks float32 on CPUs."
        ),
    )
