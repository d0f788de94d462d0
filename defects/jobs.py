"""Jobs on this machine: their names, their records (``runs/<job>/job.json``) and what a
finished or detached job gives back."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from defects.errors import ConfigError, DataError, JobNotFound
from defects.training import contract

if TYPE_CHECKING:
    from defects.backends.base import RemoteJob

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


def _is_number(value: object) -> TypeGuard[int | float]:
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
        if not all(_is_number(value) for value in values):
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
    return {"pid": os.getpid(), "host": socket.gethostname()}


def process_alive(record: dict[str, Any]) -> bool | None:
    """Whether the process that runs the job is alive; None when this machine cannot tell
    (another host, or a record without a pid)."""
    pid = record.get("pid")
    if not isinstance(pid, int) or record.get("host") != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def true_status(record: dict[str, Any]) -> str:
    """The recorded status, except that a running (or preparing) job whose process is gone was
    interrupted (killed, or its machine restarted) before it could say so."""
    status = str(record.get("status") or "unknown")
    if status in ("running", "preparing") and process_alive(record) is False:
        return "interrupted"
    return status


def _started(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


@dataclass(frozen=True)
class JobInfo:
    """One job as ``defects jobs`` lists it, from its folder's records."""

    name: str  # the folder under runs/ (``<tuning-job>/<trial>`` for a nested one)
    run_dir: Path
    backend: str
    status: str
    started: str | None
    seconds: float | None
    validation_accuracy: float | None
    test_accuracy: float | None
    macro_f1: float | None
    dataset_id: str | None
    image_size: str | None
    error: str | None = None
    # What the service that runs the job on its own says (SageMaker's status).
    remote_status: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "run_dir": str(self.run_dir)}


def _metric(metrics: dict[str, Any], split: str, name: str) -> float | None:
    scores = metrics.get(split)
    value = scores.get(name) if isinstance(scores, dict) else None
    return float(value) if _is_number(value) else None


def job_info(run_dir: Path, runs_dir: Path) -> JobInfo:
    """What the records in ``run_dir`` say about its job."""
    record = read_record(run_dir)
    metrics = json_object(run_dir / contract.METRICS_FILE)
    status = true_status(record)
    seconds = record.get("seconds")
    started = _started(record.get("started"))
    if status == "running" and started is not None:
        # A resumed job: its earlier attempts, and this one since it resumed.
        found = record.get("resumed")
        resumed: dict[str, Any] = found if isinstance(found, dict) else {}
        since = _started(resumed.get("at")) or started
        earlier = resumed.get("earlier_seconds") if resumed.get("at") else 0
        earlier = earlier if isinstance(earlier, int | float) else 0
        seconds = (datetime.now(UTC) - since).total_seconds() + earlier
    hyperparameters = record.get("hyperparameters") or {}
    image_size = metrics.get("image_size") or hyperparameters.get("image_size")
    return JobInfo(
        name=run_dir.relative_to(runs_dir).as_posix(),
        run_dir=run_dir,
        backend=str(record.get("backend") or "unknown"),
        status=status,
        started=record.get("started"),
        seconds=round(float(seconds), 1) if isinstance(seconds, int | float) else None,
        validation_accuracy=_metric(metrics, "validation", "accuracy"),
        test_accuracy=_metric(metrics, "test", "accuracy"),
        macro_f1=_metric(metrics, "validation", "macro_f1"),
        dataset_id=record.get("dataset_id"),
        image_size=str(image_size) if image_size is not None else None,
        error=record.get("error"),
    )


def _link_on_the_way(runs_dir: Path, folder: Path) -> Path | None:
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
    link = _link_on_the_way(runs_dir, folder)
    if link is not None:
        raise JobNotFound(
            f"{link} is a symbolic link (to {os.readlink(link)}); defects never follows one "
            "to a job's folder: it would read and write the job's files there.",
            hint="Move the folder itself under the runs folder, or point --runs-dir "
            "(DEFECTS_RUNS_DIR) at the folder that holds it.",
        )
    return folder


def job_folders(runs_dir: Path) -> list[Path]:
    """Every folder under ``runs_dir`` with a record, one level deep or two (the trials of
    a tuning job sit in ``runs/<tuning-job>/<trial>/``); none reached by a symbolic link."""
    if not runs_dir.is_dir():
        return []
    found = [*runs_dir.glob(f"*/{RECORD_FILE}"), *runs_dir.glob(f"*/*/{RECORD_FILE}")]
    return [
        path.parent
        for path in found
        if path.is_file() and _link_on_the_way(runs_dir, path.parent) is None
    ]


def list_jobs(runs_dir: Path) -> list[JobInfo]:
    """Every job under ``runs_dir``, newest first."""
    jobs = [job_info(folder, runs_dir) for folder in job_folders(runs_dir)]
    return sorted(jobs, key=lambda job: (job.started or "", job.name), reverse=True)


def with_remote(
    jobs: list[JobInfo], remote: list[RemoteJob], backend: str, runs_dir: Path
) -> list[JobInfo]:
    """``jobs`` with the status the service of ``backend`` gives for its jobs, and its jobs
    that have no folder here, newest first."""
    by_name = {job.job_name: job for job in remote}
    merged: list[JobInfo] = []
    for info in jobs:
        found = by_name.pop(info.run_dir.name, None)
        if found is None:
            merged.append(info)
            continue
        # The record says what this machine saw; the service knows how a detached job went.
        status = found.state if info.status in {"running", "detached"} else info.status
        merged.append(replace(info, status=status, remote_status=found.remote_status))
    for found in by_name.values():
        merged.append(
            JobInfo(
                name=found.job_name,
                run_dir=runs_dir / found.job_name,
                backend=backend,
                status=found.state,
                started=found.started,
                seconds=found.seconds,
                validation_accuracy=None,
                test_accuracy=None,
                macro_f1=None,
                dataset_id=None,
                image_size=None,
                remote_status=found.remote_status,
            )
        )
    return sorted(merged, key=lambda job: (job.started or "", job.name), reverse=True)


def find_job(runs_dir: Path, job: str) -> Path:
    """A job's folder: ``latest`` is the newest job (or search: :mod:`defects.latest`); a
    folder is itself; a name is ``runs/<name>``, or the one nested job (tuning trial) of that
    name."""
    if job == LATEST:
        from defects.latest import newest_job  # It reads this module's records.

        return newest_job(runs_dir)
    path = Path(job)
    if path.is_dir() and not (runs_dir / job).is_symlink():
        return path  # A folder named on purpose (a symbolic link planted in runs/ is not).
    direct = runs_dir / job
    if direct.exists() or direct.is_symlink() or not JOB_NAME.match(job):
        return refuse_links(runs_dir, direct)
    nested = [
        folder
        for folder in runs_dir.glob(f"*/{job}")
        if (folder / RECORD_FILE).is_file() and _link_on_the_way(runs_dir, folder) is None
    ]
    return nested[0] if len(nested) == 1 else direct


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
