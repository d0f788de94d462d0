"""Model quality against cost: ``--model default`` vs ``--model article``, and bf16 vs fp32.

Every run goes through the real entry point with the default hyperparameters on the same
prepared synthetic photos (as many per class as ``defects run`` draws), changing one thing:
the model, or the precision. Accuracy and per-class recall are on the validation split;
time is the entry point's fit time (decoding in the first epoch included, the same for
every run).
"""

from __future__ import annotations

from typing import Any

from benchmarks import datasets
from benchmarks.context import Context
from benchmarks.entrypoint import EntryPointRun, run_entry_point
from benchmarks.report import Result, times
from defects.training import contract

KEYS = {
    "model_quality": "Model: default vs article",
    "mixed_precision": "Precision: mixed_bfloat16 vs float32",
}
TARGETS = {
    "model_quality": "more accurate, <= 2x the article's time",
    "mixed_precision": "none (decides the CPU default)",
}
TARGET_TIME_RATIO = 2.0


def _speed(job: EntryPointRun) -> float:
    """Training images per second: epochs after the first when there are any, else all."""
    steady = job.steady_epoch_seconds
    if steady:
        return job.train_images / steady
    return float(job.metrics["train_images_per_second"])


def _figures(job: EntryPointRun) -> dict[str, Any]:
    validation = job.metrics["validation"]
    return {
        "model": job.metrics["model"],
        "precision": job.metrics["precision"],
        "validation_accuracy": validation["accuracy"],
        "validation_macro_f1": validation["macro_f1"],
        "recall": {name: scores["recall"] for name, scores in validation["per_class"].items()},
        "fit_seconds": job.metrics["fit_seconds"],
        "train_images_per_second": job.metrics["train_images_per_second"],
        "steady_images_per_second": round(_speed(job), 1),
        "epoch_seconds": [round(s, 3) for s in job.epoch_seconds],
    }


def _recalls(figures: dict[str, Any]) -> str:
    return " ".join(f"{name} {value:.2f}" for name, value in figures["recall"].items())


def run(context: Context) -> list[Result]:
    sizes = context.sizes
    width, height = context.synthetic_size
    context.say(
        f"quality: drawing or reusing {sizes.quality_per_class} photos per class ({width}x{height})"
    )
    dataset = datasets.prepared_photos(context.data_dir, sizes.quality_per_class, width, height)
    channels = {
        name: dataset.root / name for name in (contract.TRAIN_CHANNEL, contract.VALIDATION_CHANNEL)
    }
    base: dict[str, Any] = dict(contract.hyperparameter_defaults())
    base["epochs"] = sizes.quality_epochs
    variants = {
        "article": {**base, "model": "article"},
        "default": {**base, "model": "default"},
        "default-bf16": {**base, "model": "default", "precision": "mixed_bfloat16"},
    }
    jobs: dict[str, EntryPointRun] = {}
    for name, hyperparameters in variants.items():
        context.say(
            f"quality: {name}, {sizes.quality_epochs} epoch(s) at "
            f"{hyperparameters['image_size']} px"
        )
        jobs[name] = run_entry_point(
            context.work_dir / f"quality-{name}",
            channels,
            hyperparameters,
            context.log_dir / f"quality-{name}.log",
        )
    article, default, bf16 = (_figures(jobs[n]) for n in ("article", "default", "default-bf16"))

    time_ratio = default["fit_seconds"] / article["fit_seconds"]
    accuracy_gain = default["validation_accuracy"] - article["validation_accuracy"]
    verdict = "wins" if accuracy_gain > 0 else "ties" if accuracy_gain == 0 else "loses"
    common = {
        "epochs": sizes.quality_epochs,
        "image_size": base["image_size"],
        "per_class": sizes.quality_per_class,
        "train_images": jobs["default"].train_images,
        "validation_images": jobs["default"].metrics["validation"]["count"],
    }
    speed_ratio = bf16["steady_images_per_second"] / default["steady_images_per_second"]
    accuracy_cost = default["validation_accuracy"] - bf16["validation_accuracy"]
    faster = "faster" if speed_ratio > 1 else "slower"
    return [
        Result(
            key="model_quality",
            benchmark="quality",
            title=KEYS["model_quality"],
            measured=(
                f"default: accuracy {default['validation_accuracy']:.3f}, "
                f"{default['fit_seconds']:.0f} s, {default['steady_images_per_second']:.0f} img/s"
            ),
            baseline=(
                f"article: accuracy {article['validation_accuracy']:.3f}, "
                f"{article['fit_seconds']:.0f} s, {article['steady_images_per_second']:.0f} img/s"
            ),
            ratio=time_ratio,
            ratio_text=f"{times(time_ratio)} time",
            target=TARGETS["model_quality"],
            met=accuracy_gain > 0 and time_ratio <= TARGET_TIME_RATIO,
            figures={
                **common,
                "default": default,
                "article": article,
                "accuracy_gain": round(accuracy_gain, 4),
                "accuracy_verdict": verdict,
                "time_ratio": round(time_ratio, 3),
            },
            note=(
                f"the default {verdict} on accuracy ({accuracy_gain:+.3f}) at "
                f"{time_ratio:.2f}x the article's fit time. Recall: default {_recalls(default)}; "
                f"article {_recalls(article)}."
            ),
        ),
        Result(
            key="mixed_precision",
            benchmark="quality",
            title=KEYS["mixed_precision"],
            measured=(
                f"bf16: {bf16['steady_images_per_second']:.0f} img/s, "
                f"accuracy {bf16['validation_accuracy']:.3f}"
            ),
            baseline=(
                f"fp32: {default['steady_images_per_second']:.0f} img/s, "
                f"accuracy {default['validation_accuracy']:.3f}"
            ),
            ratio=speed_ratio,
            ratio_text=f"{times(speed_ratio)} speed",
            target=TARGETS["mixed_precision"],
            met=None,
            figures={
                **common,
                "float32": default,
                "mixed_bfloat16": bf16,
                "speed_ratio": round(speed_ratio, 3),
                "accuracy_cost": round(accuracy_cost, 4),
            },
            note=(
                f"mixed_bfloat16 is {speed_ratio:.2f}x as fast ({faster}) and costs "
                f"{accuracy_cost:+.3f} accuracy on this CPU; `--precision auto` picks float32 "
                "on CPUs."
            ),
        ),
    ]
