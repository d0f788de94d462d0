"""Finding jobs: every job folder under ``runs/`` (trials inside their tuning job's folder),
each summed up as a :class:`JobInfo`, the jobs a service lists beside them, and the folder a
name (or ``latest``) stands for.

What ``latest`` names is the newest job the user started. The trials of a tuning job are not
jobs the user started one by one, and the newest of them is no better than the others. Once
a search has ended, its trials stand for one job in the place of its newest trial: its best
trial (``best_trial`` in its ``tune.json``). While the search runs, its trials count as they
are (``defects logs --follow latest`` follows the newest one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from defects.console import log
from defects.errors import DataError
from defects.jobs import containers
from defects.jobs.records import (
    JOB_NAME,
    LATEST,
    RECORD_FILE,
    TUNE_FILE,
    is_number,
    json_object,
    link_on_the_way,
    read_record,
    refuse_links,
    true_status,
)
from defects.training import contract


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
    return float(value) if is_number(value) else None


def job_info(run_dir: Path, runs_dir: Path) -> JobInfo:
    """What the records in ``run_dir`` say about its job."""
    record = read_record(run_dir)
    metrics = json_object(run_dir / contract.METRICS_FILE)
    status = true_status(record, run_dir)
    if status == "interrupted":
        # What its killed command left stopped (containers, a network) goes now.
        containers.clear_leftovers(run_dir)
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


def job_folders(runs_dir: Path) -> list[Path]:
    """Every folder under ``runs_dir`` with a record, one level deep or two (the trials of
    a tuning job sit in ``runs/<tuning-job>/<trial>/``); none reached by a symbolic link."""
    if not runs_dir.is_dir():
        return []
    found = [*runs_dir.glob(f"*/{RECORD_FILE}"), *runs_dir.glob(f"*/*/{RECORD_FILE}")]
    return [
        path.parent
        for path in found
        if path.is_file() and link_on_the_way(runs_dir, path.parent) is None
    ]


def list_jobs(runs_dir: Path) -> list[JobInfo]:
    """Every job under ``runs_dir``, newest first."""
    jobs = [job_info(folder, runs_dir) for folder in job_folders(runs_dir)]
    return sorted(jobs, key=lambda job: (job.started or "", job.name), reverse=True)


@dataclass(frozen=True)
class RemoteJob:
    """A job as the service that runs it lists it (see :meth:`Backend.remote_jobs`)."""

    job_name: str
    state: str  # "running", "completed", "failed" or "stopped"
    remote_status: str  # the service's own word, e.g. "InProgress"
    started: str | None = None
    seconds: float | None = None


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
    """A job's folder: ``latest`` is the newest job (or search: :func:`newest_job`); a
    folder is itself; a name is ``runs/<name>``, or the one nested job (tuning trial) of that
    name."""
    if job == LATEST:
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
        if (folder / RECORD_FILE).is_file() and link_on_the_way(runs_dir, folder) is None
    ]
    return nested[0] if len(nested) == 1 else direct


def best_trial(tuning_dir: Path) -> Path | None:
    """The folder of the best trial of the tuning job in ``tuning_dir`` once its search has
    ended; None while it runs, when it has none, or when ``tuning_dir`` holds no tuning job."""
    record = json_object(tuning_dir / TUNE_FILE)
    name = record.get("best_trial")
    if record.get("status") == "running" or not isinstance(name, str) or not JOB_NAME.match(name):
        return None
    folder = tuning_dir / name
    return folder if (folder / RECORD_FILE).is_file() else None


def best_of(run_dir: Path, runs_dir: Path) -> str | None:
    """The name of the ended tuning job whose best trial is in ``run_dir``, or None."""
    tuning_dir = run_dir.parent
    if tuning_dir == runs_dir or best_trial(tuning_dir) != run_dir:
        return None
    return tuning_dir.name


def newest_jobs(runs_dir: Path) -> list[JobInfo]:
    """Every job under ``runs_dir``, newest first, as ``latest`` takes them: the trials of an
    ended search are one job, its best trial, in the place of its newest trial."""
    jobs: list[JobInfo] = []
    searches: set[Path] = set()
    for job in list_jobs(runs_dir):
        tuning_dir = job.run_dir.parent
        best = best_trial(tuning_dir) if tuning_dir != runs_dir else None
        if best is None:
            jobs.append(job)
        elif tuning_dir not in searches:
            searches.add(tuning_dir)
            jobs.append(job_info(best, runs_dir))
    return jobs


def newest_job(runs_dir: Path) -> Path:
    """The folder ``latest`` names: the newest job, or the best trial of the newest search."""
    jobs = newest_jobs(runs_dir)
    if not jobs:
        raise DataError(
            f"There are no jobs in {runs_dir}, so none is the latest.",
            hint="Run one with `defects run`, or pass --runs-dir.",
        )
    tuning = best_of(jobs[0].run_dir, runs_dir)
    if tuning is not None:
        log.info("latest: %s, the best trial of tuning job %s.", jobs[0].name, tuning)
    return jobs[0].run_dir
