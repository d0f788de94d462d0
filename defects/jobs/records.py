"""Jobs on this machine: their names, their records (``runs/<job>/job.json``) and what a
finished or detached job gives back."""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeGuard

from defects.errors import ConfigError, DataError, JobNotFound
from defects.jobs import containers
from defects.training import contract

JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
RECORD_FILE = "job.json"
LOG_FILE = "job.log"
# A tuning job's record, in its folder above its trials' (see defects.tuning.record).
TUNE_FILE = "tune.json"
# The name that stands for the newest job wherever a job is taken.
LATEST = "latest"
# A job's status once it will not change any more ("unfetched": trained, its results
# not fetched yet; `defects fetch` completes it).
FINAL_STATES = ("completed", "failed", "interrupted", "stopped", "unfetched")


def new_job_name(prefix: str = "defects") -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{prefix}-{stamp}-{secrets.token_hex(2)}"


def check_job_name(name: str) -> str:
    if not JOB_NAME.match(name):
        raise ConfigError(
            f"{name!r} is not a valid job name.",
            hint="Use up to 63 letters, digits and hyphens, starting with a letter or digit.",
        )
    return name


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise DataError(
            f"{path} does not exist.",
            hint="Name a finished job's folder under runs/ (see `defects jobs`).",
        ) from error
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not valid JSON: {error}.") from error


def json_object(path: Path) -> dict[str, Any]:
    """A job file's JSON object; empty when the file is missing, unreadable or not an object
    (damaged by hand or by the disk): listings and reports show what they can."""
    try:
        value = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


# The per-epoch entries of history.json: numbers, one per epoch.
_PER_EPOCH = ("loss", "accuracy", "val_loss", "val_accuracy", "val_macro_f1")


DAMAGED_FILE_HEADLINE = "a job file is damaged"


def _damaged(path: Path, what: str) -> DataError:
    return DataError(
        f"{path} is damaged: {what}.",
        hint=f"The job's {contract.OUTPUT_ARCHIVE} holds it as the training wrote it: "
        f"`tar -xzf {path.parent / contract.OUTPUT_ARCHIVE} -C {path.parent} {path.name}`.",
        headline=DAMAGED_FILE_HEADLINE,
    )


def is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def load_history(path: Path) -> dict[str, Any]:
    """``history.json``, checked: per-epoch lists of numbers, one per epoch."""
    history = load_json(path)
    if not isinstance(history, dict):
        raise _damaged(path, "it is not a JSON object")
    epochs = history.get("epoch")
    if not isinstance(epochs, list) or not all(isinstance(e, int) for e in epochs):
        raise _damaged(path, "its 'epoch' is not a list of epoch numbers")
    for key in _PER_EPOCH:
        values = history.get(key, epochs)
        if not isinstance(values, list) or len(values) != len(epochs):
            raise _damaged(path, f"its {key!r} is not a list of {len(epochs)} values")
        if not all(is_number(value) for value in values):
            raise _damaged(path, f"its {key!r} holds something other than numbers")
    for key in ("kept_epoch", "best_epoch"):
        if history.get(key) is not None and not isinstance(history[key], int):
            raise _damaged(path, f"its {key!r} is not an epoch number")
    return history


def load_metrics(path: Path) -> dict[str, Any]:
    """``metrics.json``, checked as far as the confusion matrix of its validation split."""
    metrics = load_json(path)
    if not isinstance(metrics, dict):
        raise _damaged(path, "it is not a JSON object")
    validation = metrics.get("validation")
    if not isinstance(validation, dict):
        raise _damaged(path, "its 'validation' is not an object")
    names, matrix = validation.get("class_names"), validation.get("confusion_matrix")
    square = (
        isinstance(names, list)
        and isinstance(matrix, list)
        and len(matrix) == len(names)
        and all(
            isinstance(row, list)
            and len(row) == len(names)
            and all(isinstance(n, int) and not isinstance(n, bool) for n in row)
            for row in matrix
        )
    )
    if not square:
        raise _damaged(path, "its validation confusion matrix is not one row of counts per class")
    return metrics


def write_json(path: Path, value: object) -> None:
    """Write a JSON file whole or not at all (a reader never sees half of it)."""
    partial = path.with_suffix(".json.partial")
    try:
        partial.write_text(json.dumps(value, indent=2))
        partial.replace(path)
    except BaseException:
        # A full disk leaves the file as it was, and no half-written copy beside it.
        partial.unlink(missing_ok=True)
        raise


def write_record(run_dir: Path, record: dict[str, Any]) -> None:
    """Write ``job.json`` whole or not at all."""
    write_json(run_dir / RECORD_FILE, record)


def read_record(run_dir: Path) -> dict[str, Any]:
    """The job's record, or an empty one when it has none."""
    path = run_dir / RECORD_FILE
    return dict(load_json(path)) if path.is_file() else {}


def this_process() -> dict[str, Any]:
    """Who runs a job, for its record: a job whose process is gone is not running."""
    return containers.process(os.getpid())


def process_alive(record: dict[str, Any]) -> bool | None:
    """Whether the process that runs the job is alive; None when this machine cannot tell
    (another host, or a record without a pid)."""
    return containers.alive(record)


def link_on_the_way(runs_dir: Path, folder: Path) -> Path | None:
    """The first symbolic link from ``runs_dir`` down to ``folder`` (itself included)."""
    try:
        parts = folder.relative_to(runs_dir).parts
    except ValueError:
        return None
    current = runs_dir
    for part in parts:
        current = current / part
        if current.is_symlink():
            return current
    return None


def refuse_links(runs_dir: Path, folder: Path) -> Path:
    """``folder`` (a job's, under ``runs_dir``), unless a symbolic link leads there: a job
    folder is never followed out of the runs folder, where its files are written."""
    link = link_on_the_way(runs_dir, folder)
    if link is not None:
        raise JobNotFound(
            f"{link} is a symbolic link (to {os.readlink(link)}); defects never follows one "
            "to a job's folder: it would read and write the job's files there.",
            hint="Move the folder itself under the runs folder, or point --runs-dir "
            "(DEFECTS_RUNS_DIR) at the folder that holds it.",
        )
    return folder


def container_tree(run_dir: Path) -> Path:
    """Where a job that trains on this machine (``process``, ``local``) keeps the training
    container's ``/opt/ml`` tree: in its own folder, never through a symbolic link (a new
    attempt clears what the last one left there)."""
    root = run_dir.resolve()
    return refuse_links(root, root / "opt" / "ml")


def history_so_far(run_dir: Path) -> dict[str, Any] | None:
    """The history so far of a job training, or stopped, on this machine, as ``history.json``
    has it, from its last epoch checkpoint; None once the job has its ``history.json``, or
    without a readable checkpoint. ``best_epoch`` is the best epoch so far of a run with
    early stopping."""
    if (run_dir / contract.HISTORY_FILE).is_file():
        return None
    path = container_tree(run_dir) / contract.CHECKPOINTS_PATH / contract.CHECKPOINT_STATE_FILE
    try:
        state = json.loads(path.read_text())
        completed = int(state["epoch"])
        history = {
            key: [float(value) for value in values[:completed]]
            for key, values in dict(state["history"]).items()
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None
    record: dict[str, Any] = {"epoch": list(range(1, completed + 1)), **history}
    extra = state.get("extra")
    stopping = extra.get("early_stopping") if isinstance(extra, dict) else None
    if isinstance(stopping, dict) and stopping.get("best") is not None:
        best = stopping.get("best_epoch")
        if isinstance(best, int) and 0 <= best < completed:
            record["best_epoch"] = best + 1
    return record


def true_status(record: dict[str, Any], run_dir: Path | None = None) -> str:
    """The recorded status, except for a running (or preparing) job whose process is gone:
    ``orphaned`` while what it started still runs (its entry point or container, found
    through ``run_dir``), else ``interrupted`` (killed, or its machine restarted, before it
    could say so)."""
    status = str(record.get("status") or "unknown")
    if status in ("running", "preparing") and process_alive(record) is False:
        if run_dir is not None and containers.still_running(run_dir):
            return "orphaned"
        return "interrupted"
    return status


@dataclass(frozen=True)
class DetachedJob:
    """A job started with ``--detach``: it runs on its own, its results come later."""

    job_name: str
    backend: str
    run_dir: Path

    def line(self) -> str:
        return (
            f"started: job {self.job_name} on {self.backend}, detached; "
            f"`defects history {self.job_name}` fetches its results into {self.run_dir} "
            "once it has finished"
        )


@dataclass(frozen=True)
class JobResult:
    """A finished job: where its artifacts are and what it measured."""

    job_name: str
    backend: str
    seconds: float
    run_dir: Path
    metrics: dict[str, Any]

    @property
    def history(self) -> dict[str, Any]:
        """The per-epoch history (``history.json``)."""
        return load_history(self.run_dir / contract.HISTORY_FILE)

    @property
    def validation_accuracy(self) -> float:
        return float(self.metrics["validation"]["accuracy"])

    def line(self) -> str:
        minutes, seconds = divmod(round(self.seconds), 60)
        scores = (
            f"validation accuracy {self.validation_accuracy:.3f} "
            f"(macro-F1 {self.metrics['validation']['macro_f1']:.3f})"
        )
        test = self.metrics.get("test")
        if test:
            scores += f", test {test['accuracy']:.3f} (macro-F1 {test['macro_f1']:.3f})"
        kept = self.metrics.get("training", {}).get("kept_epoch")
        if kept:
            scores += f", epoch {kept} of {self.metrics['training']['epochs_run']} kept"
        return (
            f"succeeded: job {self.job_name} on {self.backend} in {minutes}m{seconds:02d}s, "
            f"{scores}, artifacts in {self.run_dir}"
        )


# What ``run`` gives back: a finished job, or one that runs on its own.
RunResult = JobResult | DetachedJob
