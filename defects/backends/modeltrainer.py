"""A :class:`TrainingJob` as a SageMaker SDK v3 ``ModelTrainer``: shared by ``local`` and
``sagemaker``, so that the container and the cloud get the very same request.

The SDK is imported only here, and only when one of those backends is chosen.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any
from unittest import mock

from defects.backends.base import DEFAULT_VOLUME_GB, Check, TrainingJob
from defects.errors import BackendError, NotAvailable
from defects.storage import Storage
from defects.training import contract

TENSORFLOW_VERSION = "2.21"
PYTHON_VERSION = "py312"
# The SDK resolves "local_cpu" to the GPU image; a real CPU type gives the CPU image.
CPU_INSTANCE_FOR_IMAGE = "ml.m5.xlarge"
GPU_INSTANCE_FOR_IMAGE = "ml.g4dn.xlarge"
NO_TELEMETRY = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
CONTAINER_CHECKPOINTS = "/opt/ml/checkpoints"
# The SDK's source code channel, and the entry point's own environment.
ENTRY_ENVIRONMENT = {
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


# The SDK is an extra: the default backend needs none of it.
SDK_INSTALL = "pip install -e '.[sagemaker]'"


def sdk_check() -> Check:
    """Whether the SageMaker SDK (``sagemaker-train``) is installed here."""
    import importlib.util

    try:
        found = importlib.util.find_spec("sagemaker.train") is not None
    except ModuleNotFoundError:
        found = False
    return Check(
        "SageMaker SDK",
        found,
        "installed" if found else "sagemaker-train is not installed",
        hint=f"Install it with `{SDK_INSTALL}` (or `scripts/bootstrap sagemaker`).",
    )


def require_sdk() -> None:
    """Raise :class:`NotAvailable`, with the install command, when the SDK is missing."""
    check = sdk_check()
    if not check.ok:
        raise NotAvailable(
            f"The local and sagemaker backends need the SageMaker SDK: {check.detail}.",
            hint=check.hint,
        )


class Interrupted(Exception):
    """Ctrl-C (or SIGTERM) as an ordinary exception: the SDK's telemetry wrapper swallows
    KeyboardInterrupt (a ``return`` in a ``finally``) but re-raises exceptions."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def ctrl_c_as_exception() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`Interrupted` while SDK code runs (main thread
    only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = {number: signal.signal(number, handler) for number in _STOP_SIGNALS}
    try:
        yield
    finally:
        for number, action in previous.items():
            signal.signal(number, action)


@contextmanager
def checkpoints_mounted(host_dir: str) -> Iterator[None]:
    """Mount ``host_dir`` at ``/opt/ml/checkpoints`` in local mode. The SDK leaves that
    folder inside the container, where it goes with the container; mounted, it outlives the
    job, as SageMaker's checkpoint sync does, and the next attempt resumes from it."""
    from sagemaker.core.local.image import _Volume
    from sagemaker.train.local.local_container import _LocalContainer

    original = _LocalContainer._prepare_training_volumes

    def prepare(container: Any, *args: Any, **kwargs: Any) -> list[str]:
        volumes = original(container, *args, **kwargs)
        return [*volumes, _Volume(host_dir, CONTAINER_CHECKPOINTS).map]

    with mock.patch.object(_LocalContainer, "_prepare_training_volumes", prepare):
        yield


def official_image(region: str, instance_type: str) -> str:
    """The AWS TensorFlow training image (DLC) for the pinned version and this instance."""
    require_sdk()
    from sagemaker.core import image_uris

    resolvable = instance_type
    if instance_type.startswith("local"):
        resolvable = (
            GPU_INSTANCE_FOR_IMAGE if instance_type == "local_gpu" else (CPU_INSTANCE_FOR_IMAGE)
        )
    return str(
        image_uris.retrieve(
            "tensorflow",
            region,
            version=TENSORFLOW_VERSION,
            py_version=PYTHON_VERSION,
            instance_type=resolvable,
            image_scope="training",
        )
    )


def make_session(region: str, bucket: str, boto_session: Any = None) -> Any:
    """An SDK session with telemetry off and the bucket given (so it never asks STS)."""
    import boto3

    require_sdk()
    from sagemaker.core.helper.session_helper import Session

    return Session(
        boto_session=boto_session or boto3.Session(region_name=region),
        default_bucket=bucket,
        sagemaker_config=NO_TELEMETRY,
    )


@contextmanager
def sdk_environment(store: Storage) -> Iterator[None]:
    """Point the SDK's own AWS clients at ``store`` while it runs (it takes no endpoint
    argument): the one place the endpoint goes into this process's environment."""
    values = store.sdk_environment()
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def exact_job_name() -> Iterator[None]:
    """Make the SDK use ``base_job_name`` as the job name, without a timestamp suffix.

    Our job names are already unique, and the same name on every backend is what lets
    ``defects history JOB`` find any job.
    """
    with mock.patch("sagemaker.train.model_trainer._get_unique_name", lambda base, **_: base):
        yield


@contextmanager
def staging_bucket(bucket: str) -> Iterator[None]:
    """Make the SDK upload the code and its drivers to ``bucket``, the job's own bucket.

    Left alone, it asks ``iam:SimulatePrincipalPolicy`` whether the role may write to the
    session's default bucket and, when the answer is not "allowed", stages under the output
    path instead. Our bucket is checked before anything is uploaded.
    """
    with mock.patch(
        "sagemaker.train.model_trainer.ModelTrainer._resolve_staging_bucket",
        lambda trainer: (bucket, None),
    ):
        yield


@dataclass(frozen=True)
class Target:
    """Where a ``ModelTrainer`` runs a job: the mode (``LOCAL_CONTAINER`` or
    ``SAGEMAKER_TRAINING_JOB``), the SDK session, the image, the instance type and the code
    folder; in local mode the container root, in the cloud the execution role."""

    mode: str
    session: Any
    image: str
    instance_type: str
    source_dir: str
    role: str | None = None
    local_container_root: str | None = None


def make_trainer(job: TrainingJob, target: Target, extra: Mapping[str, Any] | None = None) -> Any:
    """Build the ``ModelTrainer`` for ``job`` at ``target``: what every mode shares, then
    ``extra`` arguments of the SDK's (the cloud's S3 layout, limits and network)."""
    require_sdk()
    from sagemaker.core.training.configs import Compute, InputData, SourceCode
    from sagemaker.train import ModelTrainer
    from sagemaker.train.model_trainer import Mode

    arguments: dict[str, Any] = {
        "training_mode": Mode[target.mode],
        "sagemaker_session": target.session,
        "base_job_name": job.name,
        "training_image": target.image,
        "source_code": SourceCode(source_dir=target.source_dir, entry_script=job.entry_script),
        "compute": Compute(
            instance_type=target.instance_type,
            instance_count=1,
            volume_size_in_gb=DEFAULT_VOLUME_GB,
        ),
        # The one serialiser: the same text the process backend passes as arguments.
        "hyperparameters": contract.serialise(job.hyperparameters),
        "input_data_config": [
            InputData(channel_name=channel, data_source=uri)
            for channel, uri in sorted(job.channels.items())
        ],
        "environment": dict(ENTRY_ENVIRONMENT),
    }
    if target.role:
        arguments["role"] = target.role
    if target.local_container_root:
        arguments["local_container_root"] = target.local_container_root
    arguments.update(extra or {})
    # The role is checked in the constructor; the emulator and offline runs cannot answer
    # iam:SimulatePrincipalPolicy, and the cloud backend checks the role itself beforehand.
    os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")
    try:
        return ModelTrainer(**arguments)
    except ValueError as error:
        raise BackendError(
            f"The SageMaker SDK refused the training job: {error}",
            hint="Check the instance type, image and role settings (`defects config`).",
        ) from error
