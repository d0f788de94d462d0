"""One job, as Python functions: train, fetch, plot, and ``run``, which chains them after the
data steps (:mod:`defects.dataset.steps`: synthesize, prepare, stage).

The CLI and notebooks call the same functions. The backend is made once, by the caller (the
CLI) or here when none is given, and opens the storage its jobs need::

    backend = defects.backends.create(settings)
    with backend.open_storage() as store:
        channels = stage(dataset, store)
        train(channels, store, backend, hyperparameters, "my-job")
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from defects.backends.base import Backend, CloudOptions, TrainingJob, TrainingResult
from defects.backends.launcher import ENTRY_SCRIPT, source_dir
from defects.console import log
from defects.dataset.manifest import SPLITS, PreparedDataset
from defects.dataset.steps import DATA_DIR, stage, stage_weights, weights_files, weights_location
from defects.errors import DataError, DefectsError, StorageError, TrainingFailed
from defects.jobs.cleanup import drop_backend_copies
from defects.jobs.records import (
    DetachedJob,
    JobResult,
    RunResult,
    history_so_far,
    load_history,
    load_json,
    load_metrics,
    read_record,
    this_process,
    write_record,
)
from defects.pipeline import lifecycle
from defects.pipeline.request import (
    BeforeLaunch,
    JobRequest,
    resolve_image_size,
)
from defects.settings import Settings
from defects.storage import Storage, s3
from defects.storage.archives import safe_extract
from defects.training import contract
from defects.training.contract import HyperparameterValue

PLOTS = ("curves.png", "confusion.png")


def training_job(
    name: str,
    hyperparameters: Mapping[str, HyperparameterValue],
    channels: Mapping[str, str],
    run_dir: Path,
    options: CloudOptions,
    code_dir: Path | None = None,
    dataset: PreparedDataset | None = None,
) -> TrainingJob:
    return TrainingJob(
        name=name,
        hyperparameters=dict(hyperparameters),
        channels=dict(channels),
        run_dir=run_dir,
        source_dir=source_dir(code_dir or run_dir / "code"),
        entry_script=ENTRY_SCRIPT,
        options=options,
        channel_bytes=split_bytes(dataset) if dataset is not None else {},
    )


def split_bytes(dataset: PreparedDataset) -> dict[str, int]:
    """The size of each split's images, as their channels hold them."""
    sizes = dict.fromkeys(SPLITS, 0)
    for entry in dataset.files():
        sizes[str(entry["split"])] += int(entry.get("bytes") or 0)
    return sizes


def train(
    channels: Mapping[str, str],
    store: Storage,
    backend: Backend,
    hyperparameters: Mapping[str, HyperparameterValue],
    job_name: str,
    options: CloudOptions | None = None,
    dataset: PreparedDataset | None = None,
) -> TrainingResult:
    """Run one job on ``backend`` with the open ``store`` and keep its record in
    ``runs/<job>/job.json``."""
    run_dir = backend.settings.runs_dir / job_name
    run_dir.mkdir(parents=True, exist_ok=True)
    requested_size = hyperparameters.get("image_size")
    hyperparameters = resolve_image_size(hyperparameters, dataset)
    if hyperparameters.get("image_size") != requested_size:
        log.info(
            "Image size %s, chosen automatically from the train images' sizes (image_size "
            "auto); the entry point gets it as its image_size.",
            hyperparameters["image_size"],
        )
    job = training_job(
        job_name, hyperparameters, channels, run_dir, options or CloudOptions(), dataset=dataset
    )
    previous = read_record(run_dir)
    record: dict[str, Any] = {
        **previous,  # What `run` recorded when it reserved the name, or an earlier attempt.
        "job_name": job_name,
        "backend": backend.name,
        "bucket": store.layout.bucket,
        "prefix": store.layout.prefix,
        "hyperparameters": dict(hyperparameters),
        "image_size": {"requested": requested_size, "chosen": hyperparameters.get("image_size")},
        "channels": dict(channels),
        "output_uri": str(store.layout.job_output(job_name)),
        "dataset_id": dataset.dataset_id if dataset else None,
        # Where the prepared data is on this machine, for `defects evaluate JOB`.
        "dataset_root": str(dataset.root.resolve()) if dataset else None,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": "running",
        **this_process(),
    }
    record.pop("error", None)  # An earlier attempt's.
    # A resumed job keeps its first start, and its duration counts the earlier attempts.
    earlier = float(record.pop("seconds", None) or 0)
    if earlier and previous.get("started"):
        record["resumed"] = {"at": record["started"], "earlier_seconds": round(earlier, 3)}
        record["started"] = previous["started"]
    write_record(run_dir, record)
    started = time.perf_counter() - earlier
    try:
        result = backend.train(job, store)
    except BaseException as error:
        record["status"] = lifecycle.status_of(error)
        record["error"] = str(error)
        record["seconds"] = round(time.perf_counter() - started, 3)
        write_record(run_dir, record)
        raise
    record.update(
        status="detached" if result.detached else "completed",
        seconds=round(time.perf_counter() - started, 3),
        model_uri=result.model_uri,
        details=dict(result.details),
    )
    write_record(run_dir, record)
    return result


def describe(
    dataset: PreparedDataset,
    backend: Backend,
    hyperparameters: Mapping[str, HyperparameterValue],
    job_name: str,
    options: CloudOptions | None = None,
    data_dir: Path = DATA_DIR,
) -> dict[str, Any]:
    """The request ``backend`` would make for this job; nothing is uploaded or sent."""
    layout = backend.layout(offline=True)
    channels = layout.channels(dataset.dataset_id, SPLITS)
    weights = weights_files([str(hyperparameters["model"])], data_dir)
    if weights:
        channels[contract.PRETRAINED_CHANNEL] = str(weights_location(weights, layout))
    run_dir = backend.settings.runs_dir / job_name
    # Nothing of a job that never ran stays behind: its code is laid out in a temporary folder.
    with tempfile.TemporaryDirectory(prefix="defects-code-") as code_dir:
        job = training_job(
            job_name,
            resolve_image_size(hyperparameters, dataset),
            channels,
            run_dir,
            options or CloudOptions(),
            Path(code_dir),
            dataset,
        )
        return backend.describe(job, layout)


# Files a job folder owns before its output archive is unpacked into it: the archive may
# not replace them.
JOB_FILES = (
    contract.MODEL_PATH,
    contract.MODEL_ARCHIVE,
    contract.OUTPUT_ARCHIVE,
    "job.json",
    "job.log",
    "code",
    "opt",
    lifecycle.LOCK_FILE,
)


def fetch(job_name: str, store: Storage, runs_dir: Path) -> Path:
    """Download a job's artifacts into ``runs/<job>/``: the model, history and metrics."""
    run_dir = runs_dir / job_name
    output = store.layout.job_output(job_name)
    for archive in (contract.MODEL_ARCHIVE, contract.OUTPUT_ARCHIVE):
        location = output.join(archive)
        if not s3.exists(store.s3, location):
            raise StorageError(
                f"{location} does not exist: the job has not finished or did not succeed.",
                hint="Check the job's status and log; artifacts appear when it completes.",
            )
        s3.download_file(store.s3, location, run_dir / archive)
    model_dir = run_dir / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    safe_extract(run_dir / contract.MODEL_ARCHIVE, model_dir)
    safe_extract(run_dir / contract.OUTPUT_ARCHIVE, run_dir, protected=JOB_FILES)
    drop_backend_copies(run_dir)
    return run_dir


def settings_of_job(run_dir: Path, settings: Settings) -> Settings:
    """``settings`` with the backend, bucket and prefix the job recorded when it started."""
    from dataclasses import replace

    record = read_record(run_dir)
    if not record:
        return settings
    return replace(
        settings,
        backend=record.get("backend", settings.backend),
        bucket=record.get("bucket") or settings.bucket,
        prefix=record.get("prefix") or settings.prefix,
    )


def collect(job_name: str, backend: Backend) -> Path | None:
    """Fetch a job that ran on its own (``--detach``) into ``runs/<job>/`` once it has
    finished, and draw its plots. ``backend`` is the one the job ran on
    (:func:`settings_of_job`).

    Returns None when the backend keeps no such jobs (its artifacts were fetched when it
    ran) or does not know the job; raises when the job is still running or failed.
    """
    run_dir = backend.settings.runs_dir / job_name
    status = backend.status(job_name)
    if status is None:
        return None
    if status.state == "running":
        raise DefectsError(
            f"Job {job_name} on {backend.name} has not finished: {status.detail}.",
            hint=f"Run `defects history {job_name}` again once it has finished.",
            headline="the job is still running",
        )
    if status.state != "completed":
        raise TrainingFailed(
            f"Job {job_name} on {backend.name} did not succeed: {status.detail}",
            hint="Fix the cause in its log and start it again with `defects train`.",
        )
    with backend.open_storage() as store:
        fetch(job_name, store, backend.settings.runs_dir)
    plot(run_dir)
    record = read_record(run_dir)
    if record:
        record["status"] = "completed"
        write_record(run_dir, record)
    return run_dir


def plot(run_dir: Path) -> list[Path]:
    """Draw ``curves.png`` and ``confusion.png`` from a job's history and metrics; for a job
    still training, or interrupted, on this machine, the curves of its epochs so far."""
    from defects.jobs.plots import plot_confusion, plot_curves

    run_dir = Path(run_dir)
    so_far = history_so_far(run_dir)
    if so_far is not None:
        title = f"{run_dir.name}, {len(so_far['epoch'])} epoch(s) so far"
        return [plot_curves(so_far, run_dir / PLOTS[0], title=title)]
    history = load_history(run_dir / contract.HISTORY_FILE)
    metrics = load_metrics(run_dir / contract.METRICS_FILE)
    return [
        plot_curves(history, run_dir / PLOTS[0], title=run_dir.name),
        plot_confusion(
            metrics["validation"], run_dir / PLOTS[1], title=f"{run_dir.name} (validation)"
        ),
    ]


def run(
    data: str | Path | None = None,
    settings: Settings | None = None,
    hyperparameters: Mapping[str, object] | None = None,
    job_name: str | None = None,
    per_class: int = 280,
    classes: Sequence[str] | None = None,
    data_dir: str | Path = DATA_DIR,
    options: CloudOptions | None = None,
    backend: Backend | None = None,
    before_launch: BeforeLaunch | None = None,
) -> RunResult:
    """The main job: (synthesize,) prepare, stage, train, fetch and plot.

    Returns a :class:`JobResult` (a :class:`DetachedJob` when the backend started the job
    and left it running).
    """
    request = JobRequest(**locals())  # the arguments, as given
    started = time.perf_counter()
    job = request.check()
    job.backend.check()
    run_dir = lifecycle.reserve(job.settings.runs_dir, job.name)
    record = {
        "job_name": job.name,
        "backend": job.backend.name,
        "hyperparameters": job.hyperparameters,
        "request": request.data_record(),
        "options": lifecycle.options_record(job.options),
        "status": "preparing",
    }
    with lifecycle.held(run_dir, record, new=True):
        return execute(
            job.backend,
            job.hyperparameters,
            job.name,
            job.options,
            request.data_record(),
            started,
            before_launch,
        )


def execute(
    backend: Backend,
    parameters: Mapping[str, HyperparameterValue],
    name: str,
    options: CloudOptions,
    request: Mapping[str, Any],
    started: float,
    before_launch: BeforeLaunch | None = None,
) -> RunResult:
    """The steps of ``run`` once the job's folder is held: data, training, results. A resumed
    job goes through them again; each step reuses what is already done."""
    settings = backend.settings
    data_dir = Path(request.get("data_dir") or DATA_DIR)
    dataset = JobRequest(
        data=request.get("data") or None,
        per_class=int(request.get("per_class") or 0),
        classes=request["classes"],
        data_dir=data_dir,
    ).prepare(int(parameters["seed"]))
    if before_launch is not None:
        before_launch(dataset, resolve_image_size(parameters, dataset), options)
    with backend.open_storage() as store:
        channels = {
            **stage(dataset, store),
            **stage_weights([str(parameters["model"])], store, data_dir),
        }
        result = train(channels, store, backend, parameters, name, options, dataset)
        if result.detached:
            return DetachedJob(name, backend.name, settings.runs_dir / name)
        try:
            run_dir = fetch(name, store, settings.runs_dir)
        except (StorageError, DataError) as error:
            # (DataError: the archives could not be unpacked here, a full disk say.)
            raise lifecycle.results_pending(name, error, settings.runs_dir / name) from error
    plot(run_dir)
    return job_result(name, backend.name, started, run_dir)


def job_result(name: str, backend_name: str, started: float, run_dir: Path) -> JobResult:
    """A job whose results are in ``run_dir``, started at ``started`` (``perf_counter``)."""
    return JobResult(
        name,
        backend_name,
        time.perf_counter() - started,
        run_dir,
        load_json(run_dir / contract.METRICS_FILE),
    )


def dry_run(
    data: str | Path | None = None,
    settings: Settings | None = None,
    hyperparameters: Mapping[str, object] | None = None,
    job_name: str | None = None,
    per_class: int = 280,
    classes: Sequence[str] | None = None,
    data_dir: str | Path = DATA_DIR,
    options: CloudOptions | None = None,
    backend: Backend | None = None,
    before_launch: BeforeLaunch | None = None,
) -> dict[str, Any]:
    """Prepare the data and return the request ``run`` would send; nothing is uploaded or
    sent, and no credentials are needed."""
    request = JobRequest(**locals())  # the arguments, as given
    job = request.check()
    dataset = request.prepare(int(job.hyperparameters["seed"]))
    if before_launch is not None:
        before_launch(dataset, resolve_image_size(job.hyperparameters, dataset), job.options)
    return describe(
        dataset, job.backend, job.hyperparameters, job.name, job.options, Path(data_dir)
    )


__all__ = [
    "DetachedJob",
    "JobResult",
    "RunResult",
    "collect",
    "describe",
    "dry_run",
    "fetch",
    "plot",
    "run",
    "train",
]
