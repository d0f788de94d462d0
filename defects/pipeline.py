"""The steps of one job as Python functions: synthesize, prepare, stage, train, fetch, plot.

``run`` chains them; the CLI and notebooks call the same functions. S3 work needs an open
:class:`Storage` (``with open_storage(settings, backend) as store:``), which starts the
embedded S3 server when the backend keeps its data there.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import tarfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from defects import shards, storage
from defects.backends import get_backend
from defects.backends.base import Backend, HyperparameterValue, TrainingJob, TrainingResult
from defects.console import log, progress
from defects.errors import ConfigError, DataError, DefectsError, StorageError, TrainingFailed
from defects.prepare import DEFAULT_CLASSES, SPLITS, PreparedDataset, load_manifest
from defects.settings import EMBEDDED_BUCKET, Settings, resolve
from defects.training import contract

SOURCE_DIR = Path(__file__).resolve().parent / "training"
JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
DATA_DIR = Path("data")
PLOTS = ("curves.png", "confusion.png")


@dataclass(frozen=True)
class Storage:
    """An S3 connection plus where this tool keeps things in it."""

    settings: Settings
    bucket: str
    endpoint: str | None
    s3: Any = field(repr=False)

    def root(self) -> storage.S3Uri:
        return storage.S3Uri(self.bucket, self.settings.prefix)

    def dataset_uri(self, dataset_id: str) -> storage.S3Uri:
        return self.root().join("datasets", dataset_id)

    def job_output_uri(self, job_name: str) -> storage.S3Uri:
        # SageMaker writes to <S3OutputPath>/<job-name>/output/; every backend does the same.
        return self.root().join("jobs", job_name, "output")


@contextmanager
def open_storage(settings: Settings, backend: Backend) -> Iterator[Storage]:
    """Connect to S3, starting the embedded server when the backend keeps its data there."""
    embedded = backend.embedded_storage and not settings.s3_endpoint
    server = storage.embedded_s3(settings.region) if embedded else nullcontext(None)
    with server as endpoint:
        bucket = settings.bucket or (
            EMBEDDED_BUCKET if backend.embedded_storage else backend.default_bucket()
        )
        s3 = storage.client(settings.region, settings.s3_endpoint or endpoint)
        if embedded:
            log.info("Embedded S3 server at %s (in memory, for this command).", endpoint)
        yield Storage(settings, bucket, endpoint or settings.s3_endpoint, s3)


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


def hyperparameters_with_defaults(
    given: Mapping[str, HyperparameterValue | None] | None = None,
) -> dict[str, HyperparameterValue]:
    merged: dict[str, HyperparameterValue] = dict(contract.HYPERPARAMETER_DEFAULTS)
    for name, value in (given or {}).items():
        if value is None:
            continue
        if name not in merged:
            raise ConfigError(
                f"Unknown hyperparameter {name!r}.",
                hint=f"Known: {', '.join(sorted(merged))}.",
            )
        merged[name] = value
    return merged


def synthesize(
    out_dir: Path | None = None,
    per_class: int = 100,
    seed: int = 0,
    width: int = 640,
    height: int = 360,
    data_dir: Path = DATA_DIR,
) -> Path:
    """Draw synthetic photos; reuses an identical earlier set."""
    from defects.synth import CLASS_NAMES
    from defects.synth import synthesize as draw

    if per_class < 1:
        raise ConfigError(f"--per-class must be at least 1, got {per_class}.")
    target = out_dir or data_dir / "synthetic" / f"n{per_class}-s{seed}-{width}x{height}"
    marker = target / ".complete"
    if out_dir is None and marker.exists():
        log.info("Reusing synthetic data in %s.", target)
        return target
    if out_dir is None and target.exists():
        shutil.rmtree(target)  # An interrupted earlier draw of our own; never user data.
    total = per_class * len(CLASS_NAMES)
    with progress("Drawing synthetic photos", total) as advance:
        try:
            draw(
                target,
                per_class=per_class,
                seed=seed,
                width=width,
                height=height,
                progress=lambda done, _total: advance(1),
            )
        except ValueError as error:
            raise DataError(str(error), hint="Choose an empty or new output folder.") from error
    marker.touch()
    log.info("Drew %d synthetic photos (%dx%d) in %s.", total, width, height, target)
    return target


def prepare(
    source: Path,
    out_dir: Path | None = None,
    classes: Sequence[str] = DEFAULT_CLASSES,
    seed: int = 0,
    data_dir: Path = DATA_DIR,
) -> PreparedDataset:
    """Validate and split ``source`` (or reuse it when it is already a prepared dataset)."""
    from defects.prepare import prepare as prepare_folder

    already = load_manifest(source) if source.is_dir() else None
    if already is not None:
        return already
    with progress("Checking images", 1) as advance:
        dataset = prepare_folder(
            source, out_dir, classes=classes, seed=seed, data_dir=data_dir, advance=advance
        )
    for item in dataset.skipped:
        log.warning("Skipped %s: %s", item["source"], item["reason"])
    if dataset.manifest.get("ignored_folders"):
        log.info(
            "Ignored folders (not classes): %s", ", ".join(dataset.manifest["ignored_folders"])
        )
    log.info(dataset.summary())
    return dataset


def stage(dataset: PreparedDataset, store: Storage) -> dict[str, str]:
    """Upload the splits, as tar shards, to ``s3://<bucket>/<prefix>/datasets/<id>/``;
    returns the channel URIs. Each shard is uploaded while the next one is packed."""
    started = time.perf_counter()
    # The local files first: a damaged prepared dataset fails before any S3 traffic.
    try:
        count, packed = shards.open_shards(dataset)
    except FileNotFoundError as error:
        raise DataError(
            f"The prepared file {error.filename} is missing.",
            hint="Prepare the source folder again with `defects prepare`.",
        ) from error
    storage.ensure_bucket(store.s3, store.bucket, store.settings.region)
    location = store.dataset_uri(dataset.dataset_id)
    staged: list[shards.Shard] = []

    def items() -> Iterator[storage.UploadItem]:
        manifest_path = dataset.root / "manifest.json"
        yield storage.UploadItem(
            manifest_path, location.join("manifest.json").key, storage.md5_of(manifest_path)
        )
        for shard in packed:
            staged.append(shard)
            yield storage.UploadItem(shard.path, location.join(shard.key).key, shard.md5)

    with progress(f"Staging to {location}", count + 1) as advance:
        report = storage.upload(store.s3, store.bucket, items(), location.key, advance)
    log.info(
        "Staged dataset %s (%d images in %d shards): %d object(s) uploaded (%.1f MB), "
        "%d already there, in %.1f s.",
        dataset.dataset_id,
        sum(shard.images for shard in staged),
        len(staged),
        report.transferred,
        report.bytes / 1e6,
        report.skipped,
        time.perf_counter() - started,
    )
    return {split: str(location.join(split)) for split in SPLITS}


def train(
    channels: Mapping[str, str],
    store: Storage,
    backend: Backend,
    hyperparameters: Mapping[str, HyperparameterValue],
    job_name: str,
    extras: Mapping[str, Any] | None = None,
    dataset: PreparedDataset | None = None,
) -> TrainingResult:
    """Run one job on ``backend`` and write ``runs/<job>/job.json``."""
    run_dir = store.settings.runs_dir / job_name
    run_dir.mkdir(parents=True, exist_ok=True)
    job = TrainingJob(
        name=job_name,
        hyperparameters=dict(hyperparameters),
        channels=dict(channels),
        output_uri=str(store.job_output_uri(job_name)),
        run_dir=run_dir,
        source_dir=SOURCE_DIR,
        extras=dict(extras or {}),
    )
    record: dict[str, Any] = {
        "job_name": job_name,
        "backend": backend.name,
        "bucket": store.bucket,
        "prefix": store.settings.prefix,
        "hyperparameters": dict(hyperparameters),
        "channels": dict(channels),
        "output_uri": job.output_uri,
        "dataset_id": dataset.dataset_id if dataset else None,
        # Where the prepared data is on this machine, for `defects evaluate JOB`.
        "dataset_root": str(dataset.root.resolve()) if dataset else None,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "status": "running",
    }
    record_path = run_dir / "job.json"
    record_path.write_text(json.dumps(record, indent=2))
    started = time.perf_counter()
    try:
        result = backend.train(job)
    except BaseException as error:
        record["status"] = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
        record["error"] = str(error)
        record["seconds"] = round(time.perf_counter() - started, 3)
        record_path.write_text(json.dumps(record, indent=2))
        raise
    record.update(
        status="detached" if result.detached else "completed",
        seconds=round(time.perf_counter() - started, 3),
        model_uri=result.model_uri,
        details=dict(result.details),
    )
    record_path.write_text(json.dumps(record, indent=2))
    return result


def describe(
    dataset: PreparedDataset,
    settings: Settings,
    backend: Backend,
    hyperparameters: Mapping[str, HyperparameterValue],
    job_name: str,
    extras: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The request ``backend`` would make for this job; nothing is uploaded or sent."""
    bucket = settings.bucket or (
        EMBEDDED_BUCKET if backend.embedded_storage else backend.default_bucket(offline=True)
    )
    root = storage.S3Uri(bucket, settings.prefix)
    location = root.join("datasets", dataset.dataset_id)
    job = TrainingJob(
        name=job_name,
        hyperparameters=dict(hyperparameters),
        channels={split: str(location.join(split)) for split in SPLITS},
        output_uri=str(root.join("jobs", job_name, "output")),
        run_dir=settings.runs_dir / job_name,
        source_dir=SOURCE_DIR,
        extras=dict(extras or {}),
    )
    return backend.describe(job)


def _extract(archive: Path, destination: Path) -> None:
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(destination, filter="data")


def fetch(job_name: str, store: Storage) -> Path:
    """Download a job's artifacts into ``runs/<job>/``: the model, history and metrics."""
    run_dir = store.settings.runs_dir / job_name
    output = store.job_output_uri(job_name)
    for archive in (contract.MODEL_ARCHIVE, contract.OUTPUT_ARCHIVE):
        location = output.join(archive)
        if not storage.exists(store.s3, location):
            raise StorageError(
                f"{location} does not exist: the job has not finished or did not succeed.",
                hint="Check the job's status and log; artifacts appear when it completes.",
            )
        storage.download_file(store.s3, location, run_dir / archive)
    model_dir = run_dir / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    _extract(run_dir / contract.MODEL_ARCHIVE, model_dir)
    _extract(run_dir / contract.OUTPUT_ARCHIVE, run_dir)
    return run_dir


def collect(job_name: str, settings: Settings) -> Path | None:
    """Fetch a job that ran on its own (``--detach``) into ``runs/<job>/`` once it has
    finished, and draw its plots.

    Returns None when the job's backend keeps no such jobs (its artifacts were fetched when
    it ran) or does not know the job; raises when the job is still running or failed.
    """
    record_path = settings.runs_dir / job_name / "job.json"
    record = load_json(record_path) if record_path.is_file() else {}
    if record:
        # Where the job ran, as recorded when it started.
        settings = replace(
            settings,
            backend=record.get("backend", settings.backend),
            bucket=record.get("bucket") or settings.bucket,
            prefix=record.get("prefix") or settings.prefix,
        )
    backend = get_backend(settings)
    if backend.embedded_storage:
        return None
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
    with open_storage(settings, backend) as store:
        run_dir = fetch(job_name, store)
    plot(run_dir)
    if record:
        record["status"] = "completed"
        record_path.write_text(json.dumps(record, indent=2))
    return run_dir


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise DataError(
            f"{path} does not exist.",
            hint="Name a finished job's folder under runs/ (see `ls runs`).",
        ) from error
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not valid JSON: {error}.") from error


def plot(run_dir: Path) -> list[Path]:
    """Draw ``curves.png`` and ``confusion.png`` from a job's history and metrics."""
    from defects.plots import plot_confusion, plot_curves

    history = load_json(run_dir / contract.HISTORY_FILE)
    metrics = load_json(run_dir / contract.METRICS_FILE)
    return [
        plot_curves(history, run_dir / PLOTS[0], title=run_dir.name),
        plot_confusion(
            metrics["validation"], run_dir / PLOTS[1], title=f"{run_dir.name} (validation)"
        ),
    ]


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
class JobSummary:
    job_name: str
    backend: str
    seconds: float
    run_dir: Path
    metrics: dict[str, Any]

    @property
    def validation_accuracy(self) -> float:
        return float(self.metrics["validation"]["accuracy"])

    def line(self) -> str:
        minutes, seconds = divmod(round(self.seconds), 60)
        return (
            f"succeeded: job {self.job_name} on {self.backend} in {minutes}m{seconds:02d}s, "
            f"validation accuracy {self.validation_accuracy:.3f} "
            f"(macro-F1 {self.metrics['validation']['macro_f1']:.3f}), "
            f"artifacts in {self.run_dir}"
        )


def run(
    data: Path | None = None,
    settings: Settings | None = None,
    hyperparameters: Mapping[str, HyperparameterValue | None] | None = None,
    job_name: str | None = None,
    per_class: int = 280,
    classes: Sequence[str] = DEFAULT_CLASSES,
    data_dir: Path = DATA_DIR,
    extras: Mapping[str, Any] | None = None,
    dry_run: bool = False,
) -> Any:
    """The main job: (synthesize,) prepare, stage, train, fetch and plot.

    Returns a :class:`JobSummary` (a :class:`DetachedJob` when the backend started the job
    and left it running); with ``dry_run`` it only prepares the data and returns the
    request the backend would send (a dict), sending and uploading nothing.
    """
    started = time.perf_counter()
    settings = settings or resolve()
    backend = get_backend(settings)
    parameters = hyperparameters_with_defaults(hyperparameters)
    name = check_job_name(job_name) if job_name else new_job_name()
    backend.check_options(extras or {})
    if (settings.runs_dir / name).exists():
        raise ConfigError(
            f"A job folder {settings.runs_dir / name} already exists.",
            hint="Choose another --job-name; earlier results are never overwritten.",
        )
    if not dry_run:
        backend.check()
    seed = int(parameters["seed"])
    if data is None:
        data = synthesize(per_class=per_class, seed=seed, data_dir=data_dir)
    dataset = prepare(data, classes=classes, seed=seed, data_dir=data_dir)
    if dry_run:
        return describe(dataset, settings, backend, parameters, name, extras)
    with open_storage(settings, backend) as store:
        channels = stage(dataset, store)
        result = train(channels, store, backend, parameters, name, extras, dataset)
        if result.detached:
            return DetachedJob(name, backend.name, store.settings.runs_dir / name)
        run_dir = fetch(name, store)
    plot(run_dir)
    return JobSummary(
        name,
        backend.name,
        time.perf_counter() - started,
        run_dir,
        load_json(run_dir / contract.METRICS_FILE),
    )


__all__ = [
    "DefectsError",
    "DetachedJob",
    "JobSummary",
    "Storage",
    "collect",
    "fetch",
    "open_storage",
    "plot",
    "prepare",
    "run",
    "stage",
    "synthesize",
    "train",
]
