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
from defects.backends.cloud.preflight import error_code, error_text
from defects.console import log
from defects.errors import BackendError
from defects.storage import Layout

DEFAULT_INSTANCE_TYPE = "ml.g4dn.xlarge"


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
    options = job.options
    return modeltrainer.make_trainer(
        job,
        mode="SAGEMAKER_TRAINING_JOB",
        session=session,
        image=image,
        instance_type=instance_type,
        source_dir=str(job.source_dir),
        role=role,
        input_s3_key_prefix=layout.jobs().key,
        output_path=str(layout.jobs()),
        volume_size_gb=options.volume_size,
        max_runtime_seconds=options.max_runtime,
        spot=options.spot,
        max_wait_seconds=options.wait_seconds,
        # Every job keeps checkpoints, so that a stopped one resumes (spot restarts, or
        # `--resume`); a resumed job continues from, and goes on writing, the first attempt's.
        checkpoint_uri=str(layout.checkpoints(options.checkpoints_of or job.name)),
        kms_key_id=options.kms_key,
        subnets=list(options.subnets),
        security_group_ids=list(options.security_groups),
        tags=options.tag_map,
    )


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
