"""Training throughput of the real entry point vs. ``model.fit`` on images already in memory.

Both run in a fresh process with the default hyperparameters (only the number of epochs
differs from a real job) on the same prepared synthetic photos. The entry point decodes in
its first epoch and reads its cache afterwards; the baseline decodes everything before it
starts the clock. The compared figure is images per second in the fastest epoch after the
first, an epoch being the training pass plus the validation pass (and, for the entry point,
its checkpoint). The two sides take turns for a few rounds: on a shared machine other work
slows some epochs down at random, and the fastest epoch is the least disturbed. Achieved
GFLOP/s come from FLOPs counted on the model's layer shapes, next to an estimate of the
machine's peak.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks import datasets, flops
from benchmarks.context import Context
from benchmarks.entrypoint import BenchmarkError, EntryPointRun, run_entry_point
from benchmarks.report import Result, percent, times
from defects.training import contract

KEYS = {
    "training_throughput": "Training throughput: entry point vs fit on arrays",
    "training_gflops": "Training compute: achieved vs peak",
}
TARGETS = {
    "training_throughput": ">= 0.9x fit on arrays",
    "training_gflops": "none (peak is an estimate)",
}
TARGET_RATIO = 0.9
_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _fit_in_memory(
    context: Context, channels: dict[str, Path], hyperparameters: dict[str, Any], turn: int
) -> dict[str, Any]:
    result_path = context.work_dir / f"fit-in-memory-{turn}.json"
    log_path = context.log_dir / f"training-fit-in-memory-{turn}.log"
    command = [
        sys.executable,
        "-m",
        "benchmarks.fit_in_memory",
        "--train",
        str(channels[contract.TRAIN_CHANNEL]),
        "--validation",
        str(channels[contract.VALIDATION_CHANNEL]),
        "--result",
        str(result_path),
        *contract.hyperparameter_arguments(hyperparameters),
    ]
    with log_path.open("w") as log:
        completed = subprocess.run(
            command, cwd=_PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if completed.returncode != 0:
        raise BenchmarkError(f"model.fit on arrays failed (log: {log_path.name}).")
    result: dict[str, Any] = json.loads(result_path.read_text())
    return result


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _model_flops(hyperparameters: dict[str, Any], num_classes: int) -> int:
    from defects.training.model import make_model

    network = make_model(
        (*contract.image_shape(hyperparameters["image_size"]), 3),
        num_classes,
        architecture=str(hyperparameters["model"]),
    )
    return flops.forward_flops_per_image(network)


def _alternate(
    context: Context, channels: dict[str, Path], hyperparameters: dict[str, Any]
) -> tuple[list[EntryPointRun], list[dict[str, Any]]]:
    """The entry point and model.fit on arrays, taking turns, so that other work on a shared
    machine falls on both alike; each side's fastest epoch after the first is the one least
    disturbed."""
    sizes = context.sizes
    jobs: list[EntryPointRun] = []
    baselines: list[dict[str, Any]] = []
    for turn in range(1, sizes.throughput_rounds + 1):
        context.say(
            f"training: round {turn}/{sizes.throughput_rounds}: the entry point, then "
            f"model.fit on decoded arrays, {sizes.throughput_epochs} epochs each"
        )
        jobs.append(
            run_entry_point(
                context.work_dir / f"throughput-{turn}",
                channels,
                hyperparameters,
                context.log_dir / f"training-entry-point-{turn}.log",
            )
        )
        baselines.append(_fit_in_memory(context, channels, hyperparameters, turn))
    return jobs, baselines


def run(context: Context, machine: dict[str, Any]) -> list[Result]:
    sizes = context.sizes
    width, height = context.synthetic_size
    context.say(
        f"training: drawing or reusing {sizes.throughput_per_class} photos per class "
        f"({width}x{height})"
    )
    dataset = datasets.prepared_photos(context.data_dir, sizes.throughput_per_class, width, height)
    channels = {
        name: dataset.root / name for name in (contract.TRAIN_CHANNEL, contract.VALIDATION_CHANNEL)
    }
    hyperparameters: dict[str, Any] = dict(contract.hyperparameter_defaults())
    hyperparameters["epochs"] = sizes.throughput_epochs
    hyperparameters["image_size"] = context.synthetic_image_size
    # The input pipeline's cost beside model.fit's: the network from scratch, whose epochs
    # are all alike (a pretrained network's first phase is not an epoch; the quality
    # benchmark times it).
    hyperparameters["model"] = "scratch"
    jobs, baselines = _alternate(context, channels, hyperparameters)
    entry_epochs = [seconds for job in jobs for seconds in job.epoch_seconds[1:]]
    baseline_epochs = [seconds for run in baselines for seconds in run["epoch_seconds"][1:]]
    if not entry_epochs or not baseline_epochs:
        raise BenchmarkError("The epochs after the first could not be timed.")
    entry_epoch = min(entry_epochs)
    baseline_epoch = min(baseline_epochs)
    job = jobs[0]
    train_images = job.train_images
    validation_images = int(job.metrics["validation"]["count"])
    entry_rate = train_images / entry_epoch
    baseline_rate = train_images / baseline_epoch
    ratio = entry_rate / baseline_rate

    common = {
        "model": hyperparameters["model"],
        "image_size": hyperparameters["image_size"],
        "batch_size": hyperparameters["batch_size"],
        "precision": job.metrics.get("precision"),
        "epochs": sizes.throughput_epochs,
        "rounds": sizes.throughput_rounds,
        "train_images": train_images,
        "validation_images": validation_images,
    }
    return [
        Result(
            key="training_throughput",
            benchmark="training",
            title=KEYS["training_throughput"],
            measured=f"{entry_rate:.0f} img/s (train.py, best epoch after the first)",
            baseline=f"{baseline_rate:.0f} img/s (model.fit on NumPy arrays)",
            ratio=ratio,
            ratio_text=times(ratio),
            target=TARGETS["training_throughput"],
            met=ratio >= TARGET_RATIO,
            figures={
                **common,
                "entry_point_epoch_seconds": [
                    [round(seconds, 3) for seconds in job.epoch_seconds] for job in jobs
                ],
                "entry_point_best_epoch_seconds": round(entry_epoch, 3),
                "entry_point_images_per_second": round(entry_rate, 1),
                "entry_point_fit_seconds": [job.metrics.get("fit_seconds") for job in jobs],
                # The entry point's own figure: all epochs, the first one's decoding included.
                "entry_point_train_images_per_second_metrics": [
                    job.metrics.get("train_images_per_second") for job in jobs
                ],
                "entry_point_wall_seconds": [round(job.wall_seconds, 2) for job in jobs],
                "entry_point_startup_seconds": [_rounded(job.startup_seconds) for job in jobs],
                "entry_point_after_fit_seconds": [_rounded(job.after_fit_seconds) for job in jobs],
                # The medians too: when other work runs the whole time, they say more.
                "entry_point_median_epoch_seconds": round(statistics.median(entry_epochs), 3),
                "in_memory_median_epoch_seconds": round(statistics.median(baseline_epochs), 3),
                "in_memory_epoch_seconds": [run["epoch_seconds"] for run in baselines],
                "in_memory_best_epoch_seconds": round(baseline_epoch, 3),
                "in_memory_images_per_second": round(baseline_rate, 1),
                "in_memory_decode_seconds": [run["decode_seconds"] for run in baselines],
            },
            note=(
                f"{train_images} training + {validation_images} validation images at "
                f"{hyperparameters['image_size']} px, model {hyperparameters['model']}; the "
                f"fastest epoch after the first (training + validation pass) of "
                f"{sizes.throughput_rounds} alternating round(s) per side; the entry point's "
                "metrics.json figure, first-epoch decoding included, is "
                f"{job.metrics.get('train_images_per_second')} img/s."
            ),
        ),
        _gflops_result(
            machine,
            common,
            _model_flops(hyperparameters, len(job.metrics["class_names"])),
            (entry_epoch, baseline_epoch),
        ),
    ]


def _gflops_result(
    machine: dict[str, Any],
    common: dict[str, Any],
    forward: float,
    epoch_seconds: tuple[float, float],
) -> Result:
    """The FLOP rate of the fastest epochs (the entry point's, model.fit's) beside the CPU's
    estimated peak."""
    entry_epoch, baseline_epoch = epoch_seconds
    # One epoch: a training step (about three forward passes) per training image and a
    # forward pass per validation image.
    epoch_flops = (
        flops.TRAINING_TO_FORWARD * forward * common["train_images"]
        + forward * common["validation_images"]
    )
    achieved = epoch_flops / entry_epoch / 1e9
    achieved_baseline = epoch_flops / baseline_epoch / 1e9
    peak = float(machine["peak_gflops_estimate"])
    fraction = achieved / peak if peak else float("nan")
    return Result(
        key="training_gflops",
        benchmark="training",
        title=KEYS["training_gflops"],
        measured=f"{achieved:.1f} GFLOP/s (train.py; {achieved_baseline:.1f} on arrays)",
        baseline=f"~{peak:.0f} GFLOP/s fp32 peak (estimate)",
        ratio=fraction,
        ratio_text=percent(fraction),
        target=TARGETS["training_gflops"],
        met=None,
        figures={
            **common,
            "forward_gflop_per_image": round(forward / 1e9, 4),
            "training_gflop_per_image": round(flops.TRAINING_TO_FORWARD * forward / 1e9, 4),
            "achieved_gflops": round(achieved, 2),
            "achieved_gflops_in_memory": round(achieved_baseline, 2),
            "peak_gflops_estimate": peak,
            "peak_formula": "cores x GHz x fp32 FLOP/cycle/core (2 FMA units)",
        },
        note=(
            f"Conv2D/Dense FLOPs from layer shapes: {forward / 1e6:.0f} MFLOP forward per "
            "image, training ~3x forward; peak = "
            f"{machine['cores']} cores x {machine['gigahertz']:.2f} GHz x "
            f"{machine['fp32_flops_per_cycle_per_core']} FLOP/cycle (an estimate)."
        ),
    )
