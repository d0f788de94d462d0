"""A job's life on this machine: its name reserved once, its folder held while a command
works on it, and its record (``job.json``) true at every exit.

- :func:`reserve` makes ``runs/<job>/`` without ``exist_ok``: of two commands given the
  same ``--job-name`` at once, exactly one gets it, before either does any work.
- :func:`held` locks the folder for the command's lifetime (an ``flock``, released by the
  system however the process ends) and writes the job's status when it ends: a job found
  "running" but not locked was killed (SIGKILL, power loss) and can be resumed.
- :func:`status_of` names what an exception means for the job: ``interrupted`` (Ctrl-C,
  SIGTERM, a spot reclaim: resumable), ``unfetched`` (trained, results not saved yet:
  ``defects fetch`` finishes it) or ``failed``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from defects.backends.base import CloudOptions
from defects.console import log
from defects.errors import (
    ConfigError,
    DataError,
    DefectsError,
    NotConfirmed,
    ResultsPending,
    TrainingInterrupted,
)
from defects.jobs.records import read_record, this_process, write_record

LOCK_FILE = ".lock"
# Statuses a job may be resumed from by training again; "unfetched" is finished instead.
RETRAINABLE = ("interrupted", "failed", "running", "preparing")
# Backends whose job is a child of this command: it ends when the command is interrupted.
ON_THIS_MACHINE = ("process", "local")
# What refuses a job before it starts: its data, a setting, a launch the user did not confirm.
REFUSALS = (DataError, ConfigError, NotConfirmed)


def check_runs_dir(runs_dir: Path) -> None:
    """Refuse a folder of job folders (``--runs-dir``) that cannot be one: it, or the
    nearest of its parents that exists, is a file. Nothing is made."""
    for folder in (runs_dir, *runs_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                raise _not_a_runs_dir(runs_dir)
            return


def _not_a_runs_dir(runs_dir: Path) -> ConfigError:
    return ConfigError(
        f"The jobs' folder {runs_dir} cannot be made: it, or a folder on its way, is a file.",
        hint="Point --runs-dir (DEFECTS_RUNS_DIR) at a folder, or move the file away.",
    )


def reserve(runs_dir: Path, job_name: str) -> Path:
    """Make the job's folder, or refuse a name that is taken (atomically: ``mkdir``)."""
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise _not_a_runs_dir(runs_dir) from None
    run_dir = runs_dir / job_name
    try:
        run_dir.mkdir()
    except FileExistsError:
        raise name_taken(run_dir) from None
    return run_dir


def name_taken(run_dir: Path, resume: str = "defects train --resume") -> ConfigError:
    return ConfigError(
        f"A job folder {run_dir} already exists.",
        hint="Choose another --job-name; earlier results are never overwritten "
        f"(`{resume} {run_dir.name}` continues an interrupted job).",
    )


def status_of(error: BaseException) -> str:
    """What ``error`` means for the job's record."""
    if isinstance(error, ResultsPending):
        return "unfetched"
    if isinstance(error, KeyboardInterrupt | TrainingInterrupted):
        return "interrupted"
    return "failed"


@contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Hold the job's folder; another command holding it is refused."""
    descriptor = os.open(run_dir / LOCK_FILE, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"Job {run_dir.name} is in use by another defects command.",
                hint="Wait for it to end, or stop it (Ctrl-C, or SIGTERM to its process).",
            ) from None
        yield
    finally:
        os.close(descriptor)


@contextmanager
def held(run_dir: Path, record: dict[str, Any], new: bool = False) -> Iterator[None]:
    """Lock ``run_dir`` and keep its record true: ``record`` is merged into ``job.json``
    now, and whatever ends the block is written into it as the job's status.

    A ``new`` job's folder (reserved by this command) is removed instead when the job is
    refused before it started (bad data, a setting, a launch not confirmed, while its status
    is still "preparing"): like a job SageMaker refuses, it leaves nothing to clean up."""
    with locked(run_dir):
        current = {**read_record(run_dir), **record, **this_process()}
        current.setdefault("started", datetime.now(UTC).isoformat(timespec="seconds"))
        write_record(run_dir, current)
        try:
            yield
        except BaseException as error:
            if new and isinstance(error, REFUSALS) and _not_started(run_dir):
                shutil.rmtree(run_dir, ignore_errors=True)
            else:
                _record_end(run_dir, error)
            raise


def _not_started(run_dir: Path) -> bool:
    return read_record(run_dir).get("status") == "preparing"


def _record_end(run_dir: Path, error: BaseException) -> None:
    """Write what ended the job in ``run_dir`` into its record, and how to go on."""
    latest = read_record(run_dir)
    latest["status"] = status_of(error)
    latest["error"] = str(error) or type(error).__name__
    try:
        write_record(run_dir, latest)
    except OSError as unwritten:
        # (A full disk.) The error that ended the job is the one to report.
        log.warning("Could not record how job %s ended: %s", run_dir.name, unwritten)
    if latest["status"] == "interrupted" and latest.get("backend") in ON_THIS_MACHINE:
        # (A SageMaker job says what became of it when it is interrupted.)
        log.warning(
            "Job %s was interrupted; `defects train --resume %s` continues it from "
            "its last completed epoch.",
            run_dir.name,
            run_dir.name,
        )


def results_pending(job_name: str, error: DefectsError, run_dir: Path) -> ResultsPending:
    """A failed fetch after a successful training, as the error that says how to finish."""
    return ResultsPending(
        f"Job {job_name} trained, but fetching its results into {run_dir} failed: {error.message}",
        hint=f"`defects fetch {job_name}` fetches them later without retraining.",
    )


def options_record(options: CloudOptions) -> dict[str, Any]:
    return asdict(options)


def options_from_record(values: dict[str, Any] | None) -> CloudOptions:
    """The cloud options a job was started with, from its record."""
    known = {item.name for item in fields(CloudOptions)}
    given = {k: v for k, v in (values or {}).items() if k in known}
    for name in ("subnets", "security_groups"):
        given[name] = tuple(given.get(name, ()))
    given["tags"] = tuple(tuple(pair) for pair in given.get("tags", ()))
    return CloudOptions(**given)
