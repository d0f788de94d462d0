"""The ``CreateTrainingJob`` request of the ``sagemaker`` backend: the shared
``ModelTrainer`` (:func:`modeltrainer.make_trainer`) in ``SAGEMAKER_TRAINING_JOB`` mode, so
the cloud runs the very job that ``local`` runs in the container, laid out in S3 as every
backend lays out a job (:class:`defects.storage.Layout`)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from defects.backends import modeltrainer
from defects.backends.base import TrainingJob
from defects.backends.cloud.aws import error_code, error_text
from defects.console import log
from defects.errors import BackendError
from defects.storage import Layout


def make_trainer(
    job: TrainingJob,
    layout: Layout,
    *,
    session: Any,
    role: str,
    image: str,
    instance_type: str,
) -> Any:
    """The ``ModelTrainer`` for ``job``: code under ``<prefix>/jobs/<job>/input/``, artifacts
    at ``<prefix>/jobs/<job>/output/``, checkpoints at ``<prefix>/jobs/<job>/checkpoints`` (a
    resumed job's: the first attempt's)."""
    target = modeltrainer.Target(
        mode="SAGEMAKER_TRAINING_JOB",
        session=session,
        image=image,
        instance_type=instance_type,
        source_dir=str(job.source_dir),
        role=role,
    )
    return modeltrainer.make_trainer(job, target, cloud_arguments(job, layout, instance_type))


def cloud_arguments(job: TrainingJob, layout: Layout, instance_type: str) -> dict[str, Any]:
    """What a training job in the cloud adds to the shared request: the job's S3 layout,
    its instance's disk and spot capacity, its limits, its network and its tags."""
    from sagemaker.core.training.configs import (
        CheckpointConfig,
        Compute,
        Networking,
        OutputDataConfig,
        StoppingCondition,
        Tag,
    )

    options = job.options
    arguments: dict[str, Any] = {
        "input_data_config": channels(job),
        "compute": Compute(
            instance_type=instance_type,
            instance_count=1,
            volume_size_in_gb=options.volume_size,
            enable_managed_spot_training=options.spot or None,
        ),
        # The code goes to <bucket>/<prefix>/jobs/<job>/input/{code,sm_drivers}.
        "input_s3_key_prefix": layout.jobs().key,
        "output_data_config": OutputDataConfig(
            s3_output_path=str(layout.jobs()), kms_key_id=options.kms_key
        ),
        "stopping_condition": StoppingCondition(
            max_runtime_in_seconds=options.max_runtime,
            max_wait_time_in_seconds=options.wait_seconds,
        ),
        # Every job keeps checkpoints, so that a stopped one resumes (spot restarts, or
        # `--resume`); a resumed job continues from, and goes on writing, the first attempt's.
        "checkpoint_config": CheckpointConfig(
            s3_uri=str(layout.checkpoints(options.checkpoints_of or job.name)),
            local_path=modeltrainer.CONTAINER_CHECKPOINTS,
        ),
    }
    if options.subnets or options.security_groups:
        arguments["networking"] = Networking(
            subnets=list(options.subnets) or None,
            security_group_ids=list(options.security_groups) or None,
        )
    if options.tags:
        arguments["tags"] = [Tag(key=key, value=value) for key, value in sorted(options.tags)]
    return arguments


def channels(job: TrainingJob) -> list[Any]:
    """The job's channels with the input mode of each (an ``InputData`` given an S3 URI is
    always File: only a ``Channel`` says FastFile)."""
    from sagemaker.core.training.configs import Channel, DataSource, S3DataSource

    return [
        Channel(
            channel_name=name,
            data_source=DataSource(
                s3_data_source=S3DataSource(
                    s3_data_type="S3Prefix",
                    s3_uri=uri,
                    s3_data_distribution_type="FullyReplicated",
                )
            ),
            input_mode=job.input_mode(name),
        )
        for name, uri in sorted(job.channels.items())
    ]


@contextlib.contextmanager
def sdk_context(bucket: str) -> Iterator[None]:
    """The SDK as this tool uses it: the job's own name, the code staged in its bucket."""
    with modeltrainer.exact_job_name(), modeltrainer.staging_bucket(bucket):
        yield


@contextlib.contextmanager
def quiet_sdk() -> Iterator[None]:
    """Keep the SDK's INFO chatter (config files, default region) off the user's terminal."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    loggers = [logging.getLogger("sagemaker"), logging.getLogger("sagemaker.config")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def refused(error: ClientError, instance_type: str) -> BackendError:
    """SageMaker's refusal of a request, with the usual fix."""
    hints = {
        "ResourceLimitExceeded": "Ask for a quota increase in Service Quotas (SageMaker, "
        f"'{instance_type} for training job usage', or 'for spot training job usage' "
        "with --spot), or choose another type with DEFECTS_INSTANCE_TYPE.",
        "AccessDeniedException": "These credentials need sagemaker:CreateTrainingJob and "
        "iam:PassRole on DEFECTS_ROLE_ARN.",
        "AccessDenied": "These credentials need write access to the bucket.",
    }
    return BackendError(
        f"SageMaker refused the training job: {error_text(error)}.",
        hint=hints.get(
            error_code(error), "Check the settings with `defects config` and `defects doctor`."
        ),
    )
