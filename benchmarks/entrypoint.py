"""Run the real training entry point the way the ``process`` backend does, and time its epochs.

The entry point's progress lines (``defects-progress {json}``) give the time since fit began
at the end of every epoch, so the second and later epochs (the ones that read decoded images
from the cache) can be told apart from the first (which decodes). Without them (an older
entry point), Keras's ``Epoch k/N`` lines at the beginning of each epoch are stamped as they
arrive, and the entry point's ``Training ...`` line marks the start of fit.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defects.backends import launcher as entrypoint
from defects.training import contract

_EPOCH_BEGINS = re.compile(r"^Epoch (\d+)/(\d+)$")
FIT_BEGINS = "Training "


class BenchmarkError(Exception):
    """A benchmark could not measure what it set out to (a job failed, a tool is missing)."""


@dataclass(frozen=True)
class EntryPointRun:
    metrics: dict[str, Any]
    epoch_seconds: list[float]
    wall_seconds: float
    # Where the entry point saved the model (model.keras and class_names.json).
    model_dir: Path
    # From the start of the process to the start of fit (Python, TensorFlow, the model), and
    # from the end of fit to the exit (saving, exporting, evaluating); None if not found.
    startup_seconds: float | None = None
    after_fit_seconds: float | None = None

    @property
    def train_images(self) -> int:
        return int(self.metrics["train_images"])

    @property
    def steady_epoch_seconds(self) -> float | None:
        """The median length of the epochs after the first (None with a single epoch)."""
        later = self.epoch_seconds[1:]
        return statistics.median(later) if later else None


def _progress_epoch_ends(lines: Sequence[tuple[float, str]]) -> list[float]:
    """Seconds since fit began at the end of each epoch, from the progress lines."""
    ends: list[float] = []
    for _stamp, line in lines:
        if line.startswith(contract.PROGRESS_PREFIX):
            event = json.loads(line[len(contract.PROGRESS_PREFIX) :])
            if event.get("event") == "epoch":
                ends.append(float(event["elapsed"]))
    return ends


def epoch_seconds(lines: Sequence[tuple[float, str]], fit_seconds: float | None) -> list[float]:
    """Epoch lengths from time-stamped output lines and the fit time the entry point reports.

    The progress lines' epoch ends give them directly. Without those, each epoch runs from
    its ``Epoch k/N`` line to the next one; the last ends where the fit ends (the
    ``Training`` line plus ``fit_seconds``), when that line is there.
    """
    ends = _progress_epoch_ends(lines)
    if ends:
        return [later - earlier for earlier, later in zip([0.0, *ends], ends, strict=False)]
    begins = [stamp for stamp, line in lines if _EPOCH_BEGINS.match(line.strip())]
    started = fit_start(lines)
    boundaries = list(begins)
    if begins and started is not None and fit_seconds is not None:
        boundaries.append(started + fit_seconds)
    return [later - earlier for earlier, later in zip(boundaries, boundaries[1:], strict=False)]


def fit_start(lines: Sequence[tuple[float, str]]) -> float | None:
    """When fit started: the time stamp of the entry point's ``Training ...`` line."""
    starts = [stamp for stamp, line in lines if line.startswith(FIT_BEGINS)]
    return starts[-1] if starts else None


def run_entry_point(
    work_dir: Path,
    channels: Mapping[str, Path],
    hyperparameters: Mapping[str, object],
    log_path: Path,
) -> EntryPointRun:
    """``python train.py --name value ...`` with the ``SM_*`` variables of an ``opt/ml`` tree."""
    base = work_dir / "opt" / "ml"
    script = entrypoint.source_dir(work_dir / "code") / entrypoint.ENTRY_SCRIPT
    command = entrypoint.entry_point_command(script, hyperparameters)
    lines: list[tuple[float, str]] = []
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log_path.open("a") as log:
        log.write("$ train.py " + " ".join(command[2:]) + "\n")
        returncode = entrypoint.run_entry_point(
            script,
            base,
            channels,
            hyperparameters,
            log,
            on_line=lambda line: lines.append((time.perf_counter(), line)),
        )
    ended = time.perf_counter()
    wall_seconds = ended - started
    if returncode != 0:
        failure = base / contract.FAILURE_PATH
        reason = failure.read_text().strip() if failure.is_file() else f"exit status {returncode}"
        raise BenchmarkError(f"The entry point failed: {reason} (log: {log_path.name}).")
    metrics = json.loads((base / contract.OUTPUT_DATA_PATH / contract.METRICS_FILE).read_text())
    fit_seconds = metrics.get("fit_seconds")
    fit_started = fit_start(lines)
    startup_seconds = after_fit_seconds = None
    if fit_started is not None:
        startup_seconds = fit_started - started
        if fit_seconds is not None:
            after_fit_seconds = ended - fit_started - float(fit_seconds)
    return EntryPointRun(
        metrics=metrics,
        epoch_seconds=epoch_seconds(lines, fit_seconds),
        wall_seconds=wall_seconds,
        model_dir=base / contract.MODEL_PATH,
        startup_seconds=startup_seconds,
        after_fit_seconds=after_fit_seconds,
    )
