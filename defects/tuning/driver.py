"""A tuning job, as Python functions: ``tune``, ``dry_run`` and ``resume``.

The data is prepared and staged once, for every trial. On ``process`` and ``local`` the
search runs here (:mod:`.local`); on ``sagemaker`` it is SageMaker's tuner (:mod:`.cloud`).
Either way the record is ``runs/<tuning-job>/tune.json`` and every trial is a job."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from defects import backends
from defects.dataset.manifest import SPLITS, PreparedDataset
from defects.dataset.steps import stage, stage_weights, weights_files, weights_location
from defects.errors import ConfigError
from defects.jobs.records import refuse_links
from defects.pipeline import launch as pipeline
from defects.pipeline.request import Checked, JobRequest, resolve_image_size
from defects.settings import Settings, resolve
from defects.training.contract import AUTO, PRETRAINED_CHANNEL, HyperparameterValue
from defects.tuning import record
from defects.tuning.record import TuningRecord
from defects.tuning.spec import TuningSpec
from defects.tuning.tuners import Staged, tuner_for

if TYPE_CHECKING:
    pass

# SageMaker's limit for a tuning job's name; the same everywhere, so that a name that works
# here works in the cloud.
MAX_NAME_LENGTH = 32
# Settings that change a trial's training time (see defects.pipeline.pricing).
_COSTLY = ("model", "image_size", "batch_size", "precision")

# Called once the data is prepared, before anything is uploaded or sent, with the costliest
# hyperparameters a trial may get and the number of trials: the CLI's estimate hooks in here.
BeforeTuning = Callable[[PreparedDataset, list[dict[str, HyperparameterValue]], int], None]


def costliest(
    spec: TuningSpec, fixed: Mapping[str, HyperparameterValue], dataset: PreparedDataset
) -> list[dict[str, Any]]:
    """The trials' most expensive settings: the most epochs (and ``auto``, priced at its
    cap, when it is among the values), every value (or end) of the searched settings that
    change the speed, and the image size ``auto`` chooses for ``dataset``."""
    combos: list[dict[str, Any]] = [dict(fixed)]
    for item in spec.ranges:
        choices: list[Any] = (
            list(item.values) if item.kind == "categorical" else [item.low, item.high]
        )
        if item.name == "epochs":
            numbers = [int(str(value)) for value in choices if str(value) != AUTO]
            choices = [max(numbers)] if numbers else []
            if len(numbers) < len(item.values or ()):
                choices.append(AUTO)
        elif item.kind == "integer":
            choices = [int(value or 0) for value in choices]
        if item.name == "epochs" or item.name in _COSTLY:
            combos = [{**combo, item.name: value} for combo in combos for value in choices]
    return [resolve_image_size(combo, dataset) for combo in combos]


def _begin(
    spec: TuningSpec, request: JobRequest, before_launch: BeforeTuning | None, check: bool
) -> tuple[Checked, PreparedDataset]:
    """Everything the user gave, checked before any work as for a training job (and the
    backend itself with ``check``); then the prepared data, and the cost check of the
    search's costliest trial."""
    job = request.check(
        kind="tune", max_length=MAX_NAME_LENGTH, resume_hint="defects tune --resume"
    )
    if (
        spec.early_stopping
        and spec.objective == "macro-f1"
        and "epoch_metrics" not in spec.searched
    ):
        # Early stopping needs the objective after every epoch, here and in SageMaker.
        job.hyperparameters["epoch_metrics"] = True
    if check:
        job.backend.check()
    dataset = request.prepare(int(job.hyperparameters["seed"]))
    if before_launch is not None:
        before_launch(dataset, costliest(spec, job.hyperparameters, dataset), spec.max_jobs)
    return job, dataset


def dry_run(
    spec: TuningSpec, request: JobRequest, before_launch: BeforeTuning | None = None
) -> dict[str, Any]:
    """Prepare the data and return what ``tune`` would start: on ``sagemaker`` the exact
    ``CreateHyperParameterTuningJob`` request; elsewhere the spec and one trial's request."""
    checked, dataset = _begin(spec, request, before_launch, check=False)
    layout = checked.backend.layout(offline=True)
    channels = layout.channels(dataset.dataset_id, SPLITS)
    weights = weights_files(
        spec.values_of("model", checked.hyperparameters["model"]), request.data_dir
    )
    if weights:
        channels[PRETRAINED_CHANNEL] = str(weights_location(weights, layout))
    run_dir = checked.settings.runs_dir / checked.name
    with tempfile.TemporaryDirectory(prefix="defects-code-") as code_dir:
        job = pipeline.training_job(
            checked.name,
            checked.hyperparameters,
            channels,
            run_dir,
            checked.options,
            Path(code_dir),
            dataset,
        )
        return tuner_for(checked.backend).describe(job, layout, spec)


def tune(
    spec: TuningSpec, request: JobRequest, before_launch: BeforeTuning | None = None
) -> TuningRecord:
    """Run a tuning job: prepare and stage the data once, then search."""
    checked, dataset = _begin(spec, request, before_launch, check=True)
    backend = checked.backend
    tuner = tuner_for(backend)
    tuning_dir = backend.settings.runs_dir / checked.name
    tuning = TuningRecord(
        name=checked.name,
        backend=backend.name,
        spec=spec,
        fixed=checked.hyperparameters,
        data={
            **request.data_record(),
            "dataset_id": dataset.dataset_id,
            "dataset_root": str(dataset.root.resolve()),
            # One image's share of the validation split is the finest difference between
            # trials it measures (TuningRecord.warnings).
            "validation_images": sum(dataset.counts["validation"].values()),
            "bucket": backend.layout().bucket if tuner.records_bucket else None,
            "prefix": backend.settings.prefix,
        },
    )
    with backend.open_storage() as store:
        models = spec.values_of("model", checked.hyperparameters["model"])
        channels = {**stage(dataset, store), **stage_weights(models, store, request.data_dir)}
        staged = Staged(store, channels, dataset)
        tuning.write(tuning_dir)
        return tuner.search(tuning, tuning_dir, staged, checked.options)


def resume(name: str, settings: Settings | None = None) -> TuningRecord:
    """Continue an interrupted local tuning job, keeping its finished trials (or follow a
    detached cloud one to its end)."""
    settings = settings or resolve()
    tuning_dir = refuse_links(settings.runs_dir, settings.runs_dir / name)
    if not (tuning_dir / record.TUNE_FILE).is_file():
        raise ConfigError(
            f"{tuning_dir} holds no tuning job ({record.TUNE_FILE} is missing).",
            hint="Name a tuning job folder under runs/.",
        )
    tuning = record.read(tuning_dir)
    if tuning.status == "completed":
        raise ConfigError(
            f"Tuning job {name} has already finished.",
            hint=f"Start a new one with `defects tune`; its results are in {tuning_dir}.",
        )
    bucket = tuning.data.get("bucket")
    backend = backends.create(
        replace(
            settings,
            backend=tuning.backend,
            bucket=bucket or settings.bucket,
            prefix=tuning.data["prefix"],
        )
    )
    backend.check()
    return tuner_for(backend).resume(tuning, tuning_dir)


__all__ = ["BeforeTuning", "costliest", "dry_run", "resume", "tune"]
