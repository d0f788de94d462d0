"""The backend interface.

A backend opens the storage its jobs need and runs the training entry point under the
SageMaker contract on a :class:`TrainingJob` whose channels already sit in that storage,
leaving ``model.tar.gz`` and ``output.tar.gz`` at ``s3://<bucket>/<prefix>/jobs/<job>/output/``.
What matters:

- :meth:`Backend.checks` lists what must hold before anything is uploaded (a Docker engine,
  credentials, a role...). :meth:`Backend.check` raises the first failure, with the fix in
  its hint; ``defects doctor`` prints them all.
- :meth:`Backend.open_storage` opens where the data lives: the embedded S3 server
  (``process``, ``local``) or real S3 (``sagemaker``). Flipping the backend flips both.
- :meth:`Backend.train` runs the job with that open storage and returns when the artifacts
  are in S3, or raises :class:`~defects.errors.TrainingFailed` with the entry point's
  failure reason.

The options only the cloud honours travel as one typed :class:`CloudOptions`, built once
at the boundary.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from defects.console import log
from defects.errors import BackendError, ConfigError
from defects.jobs.listing import RemoteJob
from defects.settings import EMBEDDED_BUCKET, Settings
from defects.training.contract import HyperparameterValue

if TYPE_CHECKING:
    from defects.storage import Layout, Storage

# Asks the user a yes/no question; the CLI's prompt on a terminal.
Confirm = Callable[[str], bool]

DEFAULT_MAX_RUNTIME_SECONDS = 6 * 60 * 60
DEFAULT_VOLUME_GB = 30
# Managed spot: how long to wait for capacity, as a multiple of the runtime, unless given.
SPOT_WAIT_FACTOR = 2
# How a channel reaches a SageMaker instance: downloaded first, or streamed from S3 on read;
# auto streams a channel from this size on (a download of it would hold up the start).
INPUT_MODES = ("auto", "file", "fastfile")
FASTFILE_FROM_BYTES = 2 * 2**30


def _flag(
    name: str,
    help: str = "",
    *,
    minimum: int | None = None,
    show_default: str | None = None,
    metavar: str | None = None,
    choices: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A field's command-line flag, as the CLI generates it (:func:`defects.cli.options.
    cloud_options`): a bool is a switch, a tuple a repeatable option, ``minimum`` an integer
    range."""
    return {
        "flag": name,
        "help": help,
        "minimum": minimum,
        "show_default": show_default,
        "metavar": metavar,
        "choices": choices,
    }


@dataclass(frozen=True)
class CloudOptions:
    """The options of a job that only a SageMaker training job honours, checked once."""

    detach: bool = field(
        default=False,
        metadata=_flag(
            "--detach",
            "sagemaker: start the job and return; fetch later with `defects history JOB`",
        ),
    )
    spot: bool = field(default=False, metadata=_flag("--spot", "sagemaker: managed spot training"))
    max_runtime: int = field(
        default=DEFAULT_MAX_RUNTIME_SECONDS,
        metadata=_flag(
            "--max-runtime", "sagemaker: stop the job after this many seconds", minimum=60
        ),
    )
    max_wait: int | None = field(
        default=None,
        metadata=_flag(
            "--max-wait",
            "sagemaker with --spot: give up waiting for capacity after this many seconds "
            "(counts the runtime too)",
            minimum=60,
            show_default="twice --max-runtime",
        ),
    )
    volume_size: int = field(
        default=DEFAULT_VOLUME_GB,
        metadata=_flag("--volume-size", "sagemaker: training volume in GB", minimum=1),
    )
    kms_key: str | None = field(
        default=None, metadata=_flag("--kms-key", "sagemaker: KMS key for the output artifacts")
    )
    subnets: tuple[str, ...] = field(
        default=(), metadata=_flag("--subnet", "sagemaker: VPC subnet id")
    )
    security_groups: tuple[str, ...] = field(
        default=(), metadata=_flag("--security-group", "sagemaker: VPC security group id")
    )
    tags: tuple[tuple[str, str], ...] = field(
        default=(),
        metadata=_flag("--tag", "sagemaker: a tag for the training job", metavar="KEY=VALUE"),
    )
    input_mode: str = field(
        default="auto",
        metadata=_flag(
            "--input-mode",
            "sagemaker: file (each channel downloaded before training), fastfile (streamed "
            f"from S3 as it is read) or auto (fastfile for a channel over "
            f"{FASTFILE_FROM_BYTES // 2**30} GiB)",
            choices=INPUT_MODES,
        ),
    )
    instance_count: int = field(
        default=1,
        metadata=_flag(
            "--instance-count",
            "sagemaker: instances for the job; one (several GPUs of one instance train "
            "together; several instances are refused)",
            minimum=1,
        ),
    )
    # A resumed job: the job whose checkpoints (in S3) this one continues from (no option of
    # its own: --resume names it).
    checkpoints_of: str | None = field(default=None, metadata=_flag("--resume"))

    def __post_init__(self) -> None:
        if self.max_wait is not None and not self.spot:
            raise ConfigError(
                "--max-wait only applies to managed spot training.",
                hint="Add --spot, or drop --max-wait (use --max-runtime to limit the job).",
            )
        wait = self.wait_seconds
        if wait is not None and wait < self.max_runtime:
            raise ConfigError(
                f"--max-wait ({wait} s) is shorter than the runtime limit "
                f"({self.max_runtime} s); SageMaker counts the runtime inside the wait.",
                hint="Make --max-wait at least --max-runtime "
                f"(the default is {SPOT_WAIT_FACTOR}x the runtime).",
            )
        if self.instance_count > 1:
            raise ConfigError(
                f"--instance-count {self.instance_count}: a job trains on one instance.",
                hint="Keras 3 cannot train one model across instances "
                "(MultiWorkerMirroredStrategy fails in fit: keras-team/keras#20585). Choose "
                "an instance with several GPUs (e.g. ml.g5.12xlarge, 4 GPUs, trained together "
                "under MirroredStrategy), or run several trials at once with `defects tune "
                "--max-parallel-jobs N`.",
            )
        if bool(self.subnets) != bool(self.security_groups):
            raise ConfigError(
                "A job in a VPC needs both subnets and security groups.",
                hint="Give at least one --subnet and one --security-group, or neither.",
            )

    @property
    def wait_seconds(self) -> int | None:
        """With spot, how long SageMaker may wait for capacity (runtime included)."""
        if not self.spot:
            return None
        return self.max_wait or SPOT_WAIT_FACTOR * self.max_runtime

    @property
    def tag_map(self) -> dict[str, str]:
        return dict(self.tags)

    def given(self) -> list[str]:
        """The flags of the options that differ from their defaults."""
        defaults = CloudOptions()
        return [
            item.metadata["flag"]
            for item in fields(self)
            if getattr(self, item.name) != getattr(defaults, item.name)
        ]


@dataclass(frozen=True)
class TrainingJob:
    name: str
    hyperparameters: Mapping[str, HyperparameterValue]
    # Channel name to the S3 URI of its staged data.
    channels: Mapping[str, str]
    run_dir: Path
    # The entry point's code, as it is shipped to every backend (see backends.artifacts).
    source_dir: Path
    entry_script: str = "train.py"
    options: CloudOptions = field(default_factory=CloudOptions)
    # The size of each channel's data, where known (how auto picks an input mode).
    channel_bytes: Mapping[str, int] = field(default_factory=dict)

    def input_mode(self, channel: str) -> str:
        """``File`` or ``FastFile``, as SageMaker spells them, for ``channel``."""
        mode = self.options.input_mode
        if mode == "auto":
            large = self.channel_bytes.get(channel, 0) >= FASTFILE_FROM_BYTES
            mode = "fastfile" if large else "file"
        return "FastFile" if mode == "fastfile" else "File"

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
    # Whether a resumed job runs again under its own name (False: the service keeps every
    # job name for good, so a resume is a new job that continues the old one's checkpoints).
    resumes_in_place: ClassVar[bool] = True

    def __init__(self, settings: Settings, confirm: Confirm | None = None) -> None:
        self.settings = settings
        self.confirm = confirm

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

    def check_options(self, options: CloudOptions) -> None:
        """Refuse a bad combination of a job's cloud options before any work, as a
        :class:`~defects.errors.ConfigError` naming the fix.

        By default the cloud options (spot, VPC, tags...) are not refused but named as
        ignored, so that the same command runs on every backend and nobody believes a local
        run was, say, encrypted with their KMS key."""
        given = options.given()
        if given:
            log.warning(
                "%s only appl%s to DEFECTS_BACKEND=sagemaker; the %s backend ignores %s.",
                ", ".join(given),
                "ies" if len(given) == 1 else "y",
                self.name,
                "it" if len(given) == 1 else "them",
            )

    @property
    def billed_instance_type(self) -> str | None:
        """The instance type a job is billed for (see :mod:`defects.pipeline.pricing`); None when
        jobs run on this machine."""
        return None

    def layout(self, offline: bool = False) -> Layout:
        """Where this backend's jobs keep their data. With ``offline`` it must not call AWS
        (for ``--dry-run``); a placeholder bucket will do."""
        from defects.storage import Layout

        return Layout(self.settings.bucket or EMBEDDED_BUCKET, self.settings.prefix)

    def open_storage(self) -> AbstractContextManager[Storage]:
        """Open the storage this backend's jobs use; by default an emulator (the embedded
        S3 server, or the one at ``AWS_ENDPOINT_URL_S3``)."""
        from defects.storage import open_embedded

        return open_embedded(self.layout(), self.settings.region, self.settings.s3_endpoint)

    def describe(self, job: TrainingJob, layout: Layout) -> dict[str, Any]:
        """What would be sent to run ``job``, for ``--dry-run``: nothing is uploaded or sent."""
        from defects.training import contract

        return {
            "backend": self.name,
            "job_name": job.name,
            "entry_point": job.entry_script,
            "hyperparameters": contract.serialise(job.hyperparameters),
            "channels": dict(job.channels),
            "output_uri": str(layout.job_output(job.name)),
        }

    def status(self, job_name: str) -> JobStatus | None:
        """Where ``job_name`` stands, for backends whose jobs outlive the command that
        started them (``--detach``); None when the backend keeps no such jobs or does not
        know this one."""
        return None

    def remote_jobs(self) -> list[RemoteJob]:
        """This tool's jobs as the service that runs them on its own lists them, newest
        first; empty for backends whose jobs run inside the command that started them."""
        return []

    def stop(self, job_name: str) -> bool:
        """Ask the service to stop ``job_name``; False when this backend's jobs run inside
        the command that started them (they stop with it)."""
        return False

    def read_log(self, job_name: str, on_line: Callable[[str], None], follow: bool) -> bool:
        """Pass the job's log, as the service keeps it, to ``on_line`` (until the job ends
        with ``follow``); False when the job's own ``job.log`` is the log."""
        return False

    def upload_pending(self, job: TrainingJob, store: Storage) -> TrainingResult | None:
        """Upload the results of ``job`` when it trained on this machine but its upload
        failed (they stay in its folder); None when there are none here (the cloud keeps
        its own in S3)."""
        return None

    @abstractmethod
    def train(self, job: TrainingJob, store: Storage) -> TrainingResult:
        """Run ``job`` on the open ``store`` and return once its artifacts are in S3."""
