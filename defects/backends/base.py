"""The backend interface.

A backend takes a :class:`TrainingJob` whose channels already sit in S3 and runs the
training entry point on them under the SageMaker contract, leaving ``model.tar.gz`` and
``output.tar.gz`` at ``job.output_uri`` (``s3://<bucket>/<prefix>/jobs/<job>/output/``).
Two methods matter:

- :meth:`Backend.checks` lists what must hold before anything is uploaded (a Docker engine,
  credentials, a role...). :meth:`Backend.check` raises the first failure, with the fix in
  its hint; ``defects doctor`` prints them all.
- :meth:`Backend.train` runs the job and returns when the artifacts are in S3, or raises
  :class:`~defects.errors.TrainingFailed` with the entry point's failure reason.

``embedded_storage`` says whether the backend's data lives in the embedded S3 server
(``process``, ``local``) or in real S3 (``sagemaker``): flipping the backend flips both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from defects.console import log
from defects.errors import BackendError
from defects.settings import Settings

# The command-line flag of each cloud option in ``TrainingJob.extras``.
CLOUD_FLAGS = {
    "detach": "--detach",
    "spot": "--spot",
    "max_runtime": "--max-runtime",
    "max_wait": "--max-wait",
    "volume_size": "--volume-size",
    "kms_key": "--kms-key",
    "subnets": "--subnet",
    "security_groups": "--security-group",
    "tags": "--tag",
}

HyperparameterValue = str | int | float | bool


@dataclass(frozen=True)
class TrainingJob:
    name: str
    hyperparameters: Mapping[str, HyperparameterValue]
    # Channel name to the S3 URI of a folder of <class>/<image> files.
    channels: Mapping[str, str]
    # s3://<bucket>/<prefix>/jobs/<job-name>/output: model.tar.gz and output.tar.gz land here.
    output_uri: str
    run_dir: Path
    source_dir: Path
    entry_script: str = "train.py"
    extras: Mapping[str, Any] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.run_dir / "job.log"


@dataclass(frozen=True)
class TrainingResult:
    job_name: str
    model_uri: str
    output_uri: str
    details: Mapping[str, Any] = field(default_factory=dict)
    # The job was started and left running (``--detach``): its artifacts come later.
    detached: bool = False


@dataclass(frozen=True)
class JobStatus:
    """Where a job that runs on its own stands (see :meth:`Backend.status`)."""

    job_name: str
    state: str  # "running", "completed", "failed" or "stopped"
    detail: str = ""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""


class Backend(ABC):
    name: ClassVar[str]
    embedded_storage: ClassVar[bool] = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def checks(self) -> list[Check]:
        """Everything that must hold before a job starts, in the order to fix it."""
        return []

    def check(self) -> None:
        """Raise the first failed check as a :class:`BackendError` with its fix."""
        for item in self.checks():
            if not item.ok:
                raise BackendError(
                    f"{self.name} backend: {item.name}: {item.detail}",
                    hint=item.hint,
                    headline=f"the {self.name} backend cannot run here",
                )

    def check_options(self, extras: Mapping[str, Any]) -> None:
        """Refuse a bad combination of a job's options (``TrainingJob.extras``) before any
        work, as a :class:`~defects.errors.ConfigError` naming the fix.

        By default the cloud options (spot, VPC, tags...) are not refused but named as
        ignored, so that the same command runs on every backend and nobody believes a local
        run was, say, encrypted with their KMS key."""
        if extras:
            flags = ", ".join(CLOUD_FLAGS.get(name, name) for name in sorted(extras))
            log.warning(
                "%s only appl%s to DEFECTS_BACKEND=sagemaker; the %s backend ignores %s.",
                flags,
                "ies" if len(extras) == 1 else "y",
                self.name,
                "it" if len(extras) == 1 else "them",
            )

    def default_bucket(self, offline: bool = False) -> str:
        """The bucket to use when none is configured (only asked of non-embedded backends).

        With ``offline`` it must not call AWS (for ``--dry-run``); a placeholder will do.
        """
        raise NotImplementedError

    def describe(self, job: TrainingJob) -> dict[str, Any]:
        """What would be sent to run ``job``, for ``--dry-run``: nothing is uploaded or sent."""
        return {
            "backend": self.name,
            "job_name": job.name,
            "entry_point": job.entry_script,
            "hyperparameters": dict(job.hyperparameters),
            "channels": dict(job.channels),
            "output_uri": job.output_uri,
        }

    def status(self, job_name: str) -> JobStatus | None:
        """Where ``job_name`` stands, for backends whose jobs outlive the command that
        started them (``--detach``); None when the backend keeps no such jobs or does not
        know this one."""
        return None

    @abstractmethod
    def train(self, job: TrainingJob) -> TrainingResult:
        """Run ``job`` and return once its artifacts are at ``job.output_uri``."""
