"""What a backend adds around training: a whole job's wall time minus the time spent in fit.

A tiny job runs through :func:`defects.pipeline.run` (stage, train, fetch, plot) on a
prepared synthetic dataset; ``metrics.json`` says how long ``fit`` took. The rest is
overhead: the embedded S3 server, staging, the channel download, starting Python and
TensorFlow, saving and exporting the model, evaluation, packing, uploading and fetching the
artifacts, and the plots. ``job.json`` splits it into what happens on the host and what
happens in the entry point outside ``fit``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from typing import IO, Any

import defects
from benchmarks import datasets
from benchmarks.context import Context
from benchmarks.entrypoint import FIT_BEGINS
from benchmarks.report import Result, skipped
from defects.settings import Settings, resolve

KEYS = {
    "overhead_process": "Backend overhead: process",
    "overhead_local": "Backend overhead: local (container)",
}
TARGETS = {"overhead_process": "<= 10 s", "overhead_local": "none (reported)"}
TARGET_SECONDS = 10.0
STANDIN_IMAGE = "defects-tf-training:2.21-cpu-py311-standin"


class _StampedLog:
    """A log file that notes when the entry point announces the start of fit."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self.fit_started: float | None = None

    def write(self, text: str) -> int:
        if self.fit_started is None and any(
            line.startswith(FIT_BEGINS) for line in text.splitlines()
        ):
            self.fit_started = time.perf_counter()
        return self._file.write(text)

    def flush(self) -> None:
        self._file.flush()

    def isatty(self) -> bool:
        return False


def _job(context: Context, settings: Settings, name: str) -> dict[str, Any]:
    sizes = context.sizes
    width, height = context.synthetic_size
    dataset = datasets.prepared_photos(context.data_dir, sizes.overhead_per_class, width, height)
    log_path = context.log_dir / f"{name}.log"
    # The job's own log (the entry point's output) goes to its log file, not the terminal.
    with log_path.open("w") as file:
        log = _StampedLog(file)
        started = time.perf_counter()
        with contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
            summary = defects.run(
                data=dataset.root,
                settings=settings,
                # The network from scratch, as before: the backends' overhead, compared
                # like with like (a pretrained job adds its classifier's phase and a
                # larger model to save and export: the quality benchmark times it).
                hyperparameters={"epochs": sizes.overhead_epochs, "model": "scratch"},
                job_name=name,
                data_dir=context.work_dir / "data",
            )
    record = json.loads((summary.run_dir / "job.json").read_text())
    fit_seconds = float(summary.metrics["fit_seconds"])
    entry_point = record.get("details", {}).get("entry_point_seconds")
    figures: dict[str, Any] = {
        "train_images": summary.metrics["train_images"],
        "epochs": sizes.overhead_epochs,
        "image_size": summary.metrics["image_size"],
        "wall_seconds": round(summary.seconds, 2),
        "fit_seconds": fit_seconds,
        "overhead_seconds": round(summary.seconds - fit_seconds, 2),
        "train_step_seconds": record.get("seconds"),
    }
    if log.fit_started is not None:
        before = log.fit_started - started
        figures["before_fit_seconds"] = round(before, 2)
        figures["after_fit_seconds"] = round(summary.seconds - before - fit_seconds, 2)
    if entry_point is not None:
        figures["entry_point_seconds"] = entry_point
        figures["entry_point_outside_fit_seconds"] = round(float(entry_point) - fit_seconds, 2)
        figures["host_seconds"] = round(summary.seconds - float(entry_point), 2)
    return figures


def _breakdown(figures: dict[str, Any]) -> str:
    parts = []
    if "before_fit_seconds" in figures:
        parts.append(
            f"{figures['before_fit_seconds']:.1f} s before fit (S3 server, staging, download, "
            f"Python and TensorFlow start, model build), {figures['after_fit_seconds']:.1f} s "
            "after (save, export, evaluation, upload, fetch, plots)"
        )
    if "entry_point_outside_fit_seconds" in figures:
        parts.append(
            f"{figures['entry_point_outside_fit_seconds']:.1f} s of it in the entry point, "
            f"{figures['host_seconds']:.1f} s on the host"
        )
    return "; ".join(parts) + "." if parts else ""


def local_image() -> str:
    return os.environ.get("DEFECTS_TRAINING_IMAGE") or STANDIN_IMAGE


def local_unavailable(image: str) -> str:
    """Why the local backend cannot run here, or an empty string when it can."""
    if not shutil.which("docker"):
        return "no docker command"
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        return "no Docker engine answers"
    inspect = ["docker", "image", "inspect", image]
    if subprocess.run(inspect, capture_output=True, check=False).returncode != 0:
        return f"the training image {image} is not on this machine"
    return ""


def _result(key: str, figures: dict[str, Any], met: bool | None, note: str) -> Result:
    overhead = figures["overhead_seconds"]
    return Result(
        key=key,
        benchmark="overhead",
        title=KEYS[key],
        measured=f"{overhead:.1f} s overhead ({figures['wall_seconds']:.1f} s job)",
        baseline=f"{figures['fit_seconds']:.1f} s in fit",
        ratio=overhead,
        ratio_text=f"{overhead:.1f} s",
        target=TARGETS[key],
        met=met,
        figures=figures,
        note=note,
    )


def run_process(context: Context) -> list[Result]:
    context.say(f"overhead: a tiny process job, {context.sizes.overhead_epochs} epoch(s)")
    settings = resolve(
        {"backend": "process", "runs_dir": context.work_dir / "runs-process"}, environ={}
    )
    figures = _job(context, settings, "bench-overhead-process")
    overhead = figures["overhead_seconds"]
    return [_result("overhead_process", figures, overhead <= TARGET_SECONDS, _breakdown(figures))]


def run_local(context: Context) -> list[Result]:
    if context.quick and not context.with_local:
        return [
            skipped(
                "overhead_local",
                "overhead",
                KEYS["overhead_local"],
                TARGETS["overhead_local"],
                "not run in --quick mode (add --with-local)",
            )
        ]
    image = local_image()
    reason = local_unavailable(image)
    settings = resolve(
        {
            "backend": "local",
            "runs_dir": context.work_dir / "runs-local",
            "training_image": image,
        },
        environ={},
    )
    if not reason:
        failed = [check for check in defects.create_backend(settings).checks() if not check.ok]
        if failed:
            reason = f"{failed[0].name}: {failed[0].detail}"
    if reason:
        return [
            skipped(
                "overhead_local",
                "overhead",
                KEYS["overhead_local"],
                TARGETS["overhead_local"],
                reason,
            )
        ]
    context.say(f"overhead: a tiny local job in {image}")
    figures = _job(context, settings, "bench-overhead-local")
    figures["image"] = image
    note = (
        "SageMaker local mode: compose up, the container's start, compose down and "
        "the ownership fix-up are part of the overhead."
    )
    return [_result("overhead_local", figures, None, note)]
