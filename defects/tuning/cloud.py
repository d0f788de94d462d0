"""The search in the cloud: a SageMaker hyperparameter tuning job through SDK v3's
``HyperparameterTuner``, on the very ``ModelTrainer`` a training job gets
(the backend's ``trainer``), with the spec's ranges, objective and
metric definitions. ``--dry-run`` captures the ``CreateHyperParameterTuningJob`` request the
way a training job's dry run does (:func:`defects.backends.cloud.capture`).

While it runs, its status and trial counts are followed; at the end the best training
job's artifacts are fetched into ``runs/<tuning-job>/best/``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from defects.backends.base import Backend, CloudOptions, Confirm, TrainingJob
from defects.backends.cloud import (
    SageMakerBackend,
    capture,
    channels,
    error_text,
    quiet_sdk,
    refused,
    sdk_context,
)
from defects.console import log
from defects.errors import BackendError, TrainingFailed
from defects.jobs.records import write_record
from defects.pipeline import launch as pipeline
from defects.storage import Layout, Storage
from defects.tuning.record import BEST_DIR, TuningRecord
from defects.tuning.spec import STRATEGIES, Range, TuningSpec
from defects.tuning.tuners import Staged, Tuner

if TYPE_CHECKING:
    pass

_TERMINAL = {"Completed", "Failed", "Stopped"}


def parameter_range(item: Range) -> Any:
    """A range as the SDK's parameter object, with its scaling."""
    from sagemaker.core.parameter import (
        CategoricalParameter,
        ContinuousParameter,
        IntegerParameter,
    )

    if item.kind == "categorical":
        return CategoricalParameter(item.serialised_values())
    scaling = "Logarithmic" if item.log else "Linear"
    if item.kind == "integer":
        return IntegerParameter(int(item.low or 0), int(item.high or 0), scaling_type=scaling)
    return ContinuousParameter(float(item.low or 0), float(item.high or 0), scaling_type=scaling)


def make_tuner(trainer: Any, spec: TuningSpec, tags: Mapping[str, str]) -> Any:
    from sagemaker.train.tuner import HyperparameterTuner

    return HyperparameterTuner(
        model_trainer=trainer,
        objective_metric_name=spec.objective_metric,
        objective_type=spec.objective_type,
        hyperparameter_ranges={item.name: parameter_range(item) for item in spec.ranges},
        metric_definitions=[dict(definition) for definition in spec.metric_definitions],
        strategy=STRATEGIES[spec.strategy],
        # A grid search runs every combination; SageMaker refuses a limit for it.
        max_jobs=None if spec.strategy == "grid" else spec.max_jobs,
        max_parallel_jobs=spec.max_parallel_jobs,
        early_stopping_type="Auto" if spec.early_stopping else "Off",
        # The SDK leaves out a seed of 0.
        random_seed=spec.seed,
        tags=[{"Key": key, "Value": value} for key, value in sorted(tags.items())] or None,
    )


def _tune(trainer: Any, layout: Layout, job: TrainingJob, spec: TuningSpec) -> Any:
    """Start the tuning job from ``trainer``: the code goes under the tuning job's own
    ``<prefix>/jobs/<tuning-job>/`` (the SDK names it after the trainer's base job name)."""
    trainer.base_job_name = f"{layout.jobs().key}/{job.name}"
    if trainer.checkpoint_config is not None:
        # Every trial would get the same checkpoint location and resume from another
        # trial's checkpoint: spot trials restart from the first epoch when interrupted.
        log.warning("Spot trials of a tuning job keep no checkpoints: interrupted, they restart.")
        trainer.checkpoint_config = None
    tuner = make_tuner(trainer, spec, job.options.tag_map)
    # The channels as a training job gets them, each with its input mode.
    tuner.tune(inputs=channels(job), job_name=job.name, wait=False)
    return tuner


def describe(
    backend: SageMakerBackend, job: TrainingJob, layout: Layout, spec: TuningSpec
) -> dict[str, Any]:
    """The exact ``CreateHyperParameterTuningJob`` request; nothing is uploaded or sent."""
    return capture(
        backend.aws,
        job,
        layout,
        "CreateHyperParameterTuningJob",
        lambda trainer, stand_in: _tune(trainer, stand_in, job, spec),
    )


def start(backend: SageMakerBackend, job: TrainingJob, layout: Layout, spec: TuningSpec) -> None:
    """Upload the code and create the tuning job (the data is already staged)."""
    trainer = backend.trainer(job, layout)
    log.info(
        "Starting SageMaker tuning job %s: up to %d trials on %s, %d at a time.",
        job.name,
        spec.max_jobs,
        backend.instance_type,
        spec.max_parallel_jobs,
    )
    try:
        with sdk_context(layout.bucket), quiet_sdk():
            _tune(trainer, layout, job, spec)
    except ClientError as error:
        raise refused(error, backend.instance_type) from error
    except BotoCoreError as error:
        raise BackendError(
            f"Could not start the SageMaker tuning job {job.name}: {error}.",
            hint="Check the network and the credentials (`defects doctor`).",
        ) from error


def follow(client: Any, name: str, poll_seconds: float, confirm: Confirm | None) -> dict[str, Any]:
    """Poll the tuning job until it ends, logging its status and trial counts. Ctrl-C asks
    whether to stop it (its trials are billed on their own); without a terminal it stops."""
    seen: tuple[str, str] | None = None
    try:
        while True:
            description: dict[str, Any] = client.describe_hyper_parameter_tuning_job(
                HyperParameterTuningJobName=name
            )
            status = description["HyperParameterTuningJobStatus"]
            counters = description.get("TrainingJobStatusCounters", {})
            counts = ", ".join(f"{k} {v}" for k, v in sorted(counters.items()) if v)
            if (status, counts) != seen:
                log.info(
                    "SageMaker tuning job %s: %s (trials: %s).", name, status, counts or "none yet"
                )
                seen = (status, counts)
            if status in _TERMINAL:
                return description
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        stop = confirm(f"Stop the SageMaker tuning job {name} too?") if confirm else True
        if stop:
            with contextlib.suppress(ClientError, BotoCoreError):
                client.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
                log.warning("Asked SageMaker to stop tuning job %s.", name)
        raise


def collect(
    description: Mapping[str, Any], record: TuningRecord, tuning_dir: Path, store: Storage
) -> Path | None:
    """Record the finished tuning job and fetch its best training job into ``best/``."""
    status = description["HyperParameterTuningJobStatus"]
    best = description.get("BestTrainingJob") or {}
    record.status = status.lower()
    record.details = {
        "training_job_status_counters": description.get("TrainingJobStatusCounters", {}),
        "best_training_job": best.get("TrainingJobName"),
        "best_hyperparameters": best.get("TunedHyperParameters"),
        "best_objective": (best.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get(
            "Value"
        ),
        "failure_reason": description.get("FailureReason") or None,
    }
    record.write(tuning_dir)
    if status == "Failed":
        raise TrainingFailed(
            f"The SageMaker tuning job {record.name} failed: {description.get('FailureReason')}",
            hint="Each trial's log is in CloudWatch (/aws/sagemaker/TrainingJobs).",
        )
    name = best.get("TrainingJobName")
    if not name:
        log.warning("Tuning job %s has no best training job (no trial succeeded).", record.name)
        return None
    fetched = pipeline.fetch(name, store, tuning_dir)
    destination = tuning_dir / BEST_DIR
    fetched.rename(destination)
    write_record(
        destination,
        {
            "job_name": name,
            "backend": record.backend,
            "tuning_job": record.name,
            "status": "completed",
            "hyperparameters": {**record.fixed, **(best.get("TunedHyperParameters") or {})},
            "output_uri": str(store.layout.job_output(name)),
        },
    )
    pipeline.plot(destination)
    return destination


def lookup_error(error: Exception, name: str) -> BackendError:
    text = error_text(error) if isinstance(error, ClientError) else str(error)
    return BackendError(
        f"Lost track of the SageMaker tuning job {name}: {text}. It keeps running.",
        hint="The SageMaker console shows its progress.",
    )


class CloudTuner(Tuner):
    """The search as a SageMaker hyperparameter tuning job: SageMaker's own tuner proposes
    and runs the trials; this follows it and fetches the best one."""

    records_bucket = False

    def __init__(self, backend: Backend) -> None:
        if not isinstance(backend, SageMakerBackend):
            raise TypeError(f"a SageMaker tuning job needs the sagemaker backend, not {backend}")
        super().__init__(backend)
        self.cloud = backend

    def describe(self, job: TrainingJob, layout: Layout, spec: TuningSpec) -> dict[str, Any]:
        return describe(self.cloud, job, layout, spec)

    def search(
        self, tuning: TuningRecord, tuning_dir: Path, staged: Staged, options: CloudOptions
    ) -> TuningRecord:
        job = pipeline.training_job(
            tuning.name, tuning.fixed, staged.channels, tuning_dir, options, dataset=staged.dataset
        )
        start(self.cloud, job, staged.store.layout, tuning.spec)
        tuning.status = "running"
        if options.detach:
            tuning.status = "detached"
            tuning.write(tuning_dir)
            log.info(
                "Tuning job %s runs on its own now; `defects tune --resume %s` follows it and "
                "fetches its best job.",
                tuning.name,
                tuning.name,
            )
            return tuning
        return self._follow(tuning, tuning_dir, staged.store)

    def resume(self, tuning: TuningRecord, tuning_dir: Path) -> TuningRecord:
        with self.cloud.open_storage() as store:
            return self._follow(tuning, tuning_dir, store)

    def _follow(self, tuning: TuningRecord, tuning_dir: Path, store: Storage) -> TuningRecord:
        client = self.cloud.boto_session().client("sagemaker")
        try:
            description = follow(client, tuning.name, self.cloud.poll_seconds, self.cloud.confirm)
        except Exception as error:
            raise lookup_error(error, tuning.name) from error
        collect(description, tuning, tuning_dir, store)
        return tuning
