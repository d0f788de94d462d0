"""Going on with a job that did not finish: ``defects train --resume JOB`` and
``defects fetch JOB``.

- An interrupted or failed job trains again with the same name, hyperparameters and data,
  from its last completed epoch (the entry point restores its checkpoint: model, optimizer
  state, schedule position and history). On SageMaker, where a job name is never reused, the
  resume is a new job, ``JOB-resume-N``, that continues the first attempt's checkpoints in
  S3.
- A job that trained but whose results were not uploaded or fetched (``unfetched``) is
  finished without training: its results are uploaded from its folder (``process``,
  ``local``) or fetched from S3 (``sagemaker``).
- A completed job is refused, with the reason.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from defects import backends
from defects.backends.base import Backend, Confirm, TrainingJob
from defects.console import log
from defects.errors import ConfigError, DataError, ResultsPending, StorageError
from defects.jobs import containers
from defects.jobs.records import (
    JOB_NAME,
    JobResult,
    RunResult,
    process_alive,
    read_record,
    refuse_links,
    write_record,
)
from defects.pipeline import launch as pipeline
from defects.pipeline import lifecycle
from defects.pipeline.request import BeforeLaunch, hyperparameters_with_defaults
from defects.settings import Settings
from defects.storage import s3
from defects.training import contract


def _record(run_dir: Path) -> dict[str, Any]:
    record = read_record(run_dir)
    if not record:
        raise ConfigError(
            f"There is no job {run_dir.name} in {run_dir.parent}.",
            hint="Name a job folder under runs/ (see `ls runs`), or give --runs-dir.",
        )
    return record


def resume(
    job_name: str,
    settings: Settings,
    confirm: Confirm | None = None,
    overrides: Mapping[str, Any] | None = None,
    before_launch: BeforeLaunch | None = None,
) -> RunResult:
    """Continue ``job_name`` (see the module); returns what ``run`` returns. ``overrides``
    replace cloud options the job was started with (a longer ``max_runtime``, a larger
    ``volume_size``...); ``before_launch`` is called as by ``run``."""
    run_dir = refuse_links(settings.runs_dir, settings.runs_dir / job_name)
    record = _record(run_dir)
    backend = backends.create(pipeline.settings_of_job(run_dir, settings), confirm)
    status = str(record.get("status"))
    remote = backend.status(job_name)
    if status == "unfetched" or (remote is not None and remote.state == "completed"):
        return finish(job_name, backend)
    if status == "completed":
        raise ConfigError(
            f"Job {job_name} has already completed: there is nothing to resume.",
            hint=f"`defects history {job_name}` shows it; start a new job to train more.",
            headline="nothing to resume",
        )
    if status == "detached" or (remote is not None and remote.state == "running"):
        raise ConfigError(
            f"Job {job_name} is still running on {backend.name}.",
            hint=f"`defects history {job_name}` fetches its results once it has finished.",
            headline="the job is still running",
        )
    what_runs = containers.still_running(run_dir) if process_alive(record) is False else None
    if what_runs:
        raise ConfigError(
            f"Job {job_name} lost the command that ran it, but {what_runs}: a resumed run "
            "would train beside it over the same checkpoints.",
            hint=f"Stop it with `defects stop {job_name}`, then resume.",
            headline="the job is still running",
        )
    if status not in lifecycle.RETRAINABLE:
        raise ConfigError(f"Job {job_name} has the status {status!r}, which cannot resume.")
    # What a killed command left stopped (containers, a network) goes before anything starts.
    containers.clear_leftovers(run_dir)
    request = dict(record.get("request") or {})
    if not request:
        raise ConfigError(
            f"Job {job_name} does not record its data, so it cannot be resumed.",
            hint="Start a new job with `defects train --data DIR`.",
        )
    dataset_root = record.get("dataset_root")
    if isinstance(dataset_root, str) and Path(dataset_root).is_dir():
        request["data"] = dataset_root  # The very split it trained on.
    parameters = hyperparameters_with_defaults(record.get("hyperparameters"))
    options = replace(lifecycle.options_from_record(record.get("options")), **(overrides or {}))
    backend.check()
    started = time.perf_counter()
    resumed = {"resumed": datetime.now(UTC).isoformat(timespec="seconds")}
    if backend.resumes_in_place:
        log.info("Resuming job %s on %s.", job_name, backend.name)
        with lifecycle.held(run_dir, {**resumed, "status": "preparing"}):
            return pipeline.execute(
                backend, parameters, job_name, options, request, started, before_launch
            )
    origin = options.checkpoints_of or job_name
    name = _new_name(settings.runs_dir, origin)
    new_dir = lifecycle.reserve(settings.runs_dir, name)
    options = replace(options, checkpoints_of=origin)
    log.info(
        "Resuming job %s on %s as %s, from %s's checkpoints.", job_name, backend.name, name, origin
    )
    new_record: dict[str, Any] = {
        **{key: record[key] for key in ("hyperparameters", "request") if key in record},
        **resumed,
        "job_name": name,
        "backend": backend.name,
        "resumed_from": job_name,
        "options": lifecycle.options_record(options),
        "status": "preparing",
    }
    with lifecycle.held(new_dir, new_record, new=True):
        return pipeline.execute(backend, parameters, name, options, request, started, before_launch)


def _new_name(runs_dir: Path, origin: str) -> str:
    for number in range(1, 1000):
        suffix = f"-resume-{number}"
        name = origin[: 63 - len(suffix)].rstrip("-") + suffix
        if JOB_NAME.match(name) and not (runs_dir / name).exists():
            return name
    raise ConfigError(f"Job {origin} was resumed too often.", hint="Start a new job.")


def finish(job_name: str, backend: Backend) -> JobResult:
    """Bring a trained job's results into ``runs/<job>/`` without training again: upload
    them from the job's folder when its upload failed, then fetch them; on SageMaker, fetch
    the finished job. ``backend`` is the one the job ran on."""
    started = time.perf_counter()
    runs_dir = backend.settings.runs_dir
    run_dir = runs_dir / job_name
    record = _record(run_dir)
    with lifecycle.locked(run_dir):
        if record.get("status") == "completed" and (run_dir / contract.HISTORY_FILE).is_file():
            log.info("Job %s has completed and its results are in %s.", job_name, run_dir)
        elif backend.status(job_name) is not None:
            pipeline.collect(job_name, backend)
        else:
            _upload_and_fetch(job_name, backend, run_dir)
            pipeline.plot(run_dir)
            record = read_record(run_dir)
            record.update(status="completed")
            record.pop("error", None)
            write_record(run_dir, record)
    return pipeline.job_result(job_name, backend.name, started, run_dir)


def _upload_and_fetch(job_name: str, backend: Backend, run_dir: Path) -> None:
    # Enough of the job to find its files; nothing of it runs again.
    job = TrainingJob(job_name, {}, {}, run_dir, source_dir=run_dir / "code")
    try:
        with backend.open_storage() as store:
            # An embedded S3 server starts empty for every command.
            s3.ensure_bucket(store.s3, store.layout.bucket, store.region)
            if backend.upload_pending(job, store) is not None:
                log.info("Uploaded the results of job %s from %s.", job_name, run_dir)
            pipeline.fetch(job_name, store, backend.settings.runs_dir)
    except ResultsPending:
        raise
    except (StorageError, DataError) as error:
        raise lifecycle.results_pending(job_name, error, run_dir) from error
