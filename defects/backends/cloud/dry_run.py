"""``--dry-run`` on ``sagemaker``: the exact ``CreateTrainingJob`` request, built by the SDK
against moto's in-process AWS emulator, so it needs no credentials and sends nothing."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import boto3

from defects.backends import modeltrainer
from defects.backends.base import TrainingJob
from defects.backends.cloud import preflight, request
from defects.backends.cloud.aws import ACCOUNT_PLACEHOLDER, Account
from defects.console import log
from defects.errors import BackendError
from defects.storage import Layout
from defects.storage.s3 import ensure_bucket

_DRY_RUN_BUCKET = "defects-dry-run-placeholder"


class _Captured(Exception):
    """Raised at ``before-call`` to keep a captured request from being sent."""


@contextlib.contextmanager
def offline_aws(region: str) -> Iterator[Any]:
    """A boto3 session whose every call is answered in this process by moto.

    The developer's AWS settings are hidden for the duration, so that no profile, endpoint
    or credential of theirs is read and nothing reaches the network.
    """
    from moto import mock_aws

    hidden = {name: os.environ.pop(name) for name in list(os.environ) if name.startswith("AWS_")}
    os.environ.update(
        {
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    try:
        with mock_aws():
            yield boto3.Session(
                aws_access_key_id="dry-run",
                aws_secret_access_key="dry-run",
                region_name=region,
            )
    finally:
        for name in [name for name in os.environ if name.startswith("AWS_")]:
            del os.environ[name]
        os.environ.update(hidden)


def describe(aws: Account, job: TrainingJob, layout: Layout) -> dict[str, Any]:
    """The request the backend would send for ``job``; nothing is uploaded or sent."""
    return capture(
        aws,
        job,
        layout,
        "CreateTrainingJob",
        lambda trainer, _layout: trainer.train(wait=False, logs=False),
    )


# Starts the request from the job's ModelTrainer, with the layout (and bucket) it may use.
Start = Callable[[Any, Layout], None]


def capture(
    aws: Account, job: TrainingJob, layout: Layout, operation: str, start: Start
) -> dict[str, Any]:
    """The ``operation`` request (``CreateTrainingJob``, ``CreateHyperParameterTuningJob``)
    that ``start`` makes from the job's ``ModelTrainer``, built by the SDK against moto
    in-process and captured before it is sent."""
    # Without these the request cannot be built as it would be; the rest needs AWS.
    for item in (preflight.check_region(aws), preflight.check_instance_type(aws)):
        if not item.ok:
            raise BackendError(f"sagemaker backend: {item.name}: {item.detail}", hint=item.hint)
    role = aws.settings.role_arn
    if not role:
        role = f"arn:aws:iam::{ACCOUNT_PLACEHOLDER}:role/<DEFECTS_ROLE_ARN>"
        log.warning("DEFECTS_ROLE_ARN is not set: the request shows a placeholder role.")
    bucket = layout.bucket
    # The account placeholder is no valid bucket name; the SDK gets a stand-in.
    stand_in = bucket if re.fullmatch(r"[a-z0-9.-]+", bucket) else _DRY_RUN_BUCKET
    if stand_in != bucket:
        layout = replace(layout, bucket=stand_in)
        job = replace(
            job,
            channels={
                name: uri.replace(f"s3://{bucket}/", f"s3://{stand_in}/")
                for name, uri in job.channels.items()
            },
        )
    captured: dict[str, Any] = {}

    def keep(params: dict[str, Any], **_: Any) -> None:
        captured.update(copy.deepcopy(params))

    def hold(**_: Any) -> None:
        raise _Captured()

    region = aws.settings.region
    with offline_aws(region) as boto_session, request.quiet_sdk():
        boto_session.events.register(f"before-parameter-build.sagemaker.{operation}", keep)
        boto_session.events.register(f"before-call.sagemaker.{operation}", hold)
        ensure_bucket(boto_session.client("s3"), stand_in, region)
        session = modeltrainer.make_session(region, stand_in, boto_session)
        trainer = request.make_trainer(
            job,
            layout,
            session=session,
            role=role,
            image=aws.image,
            instance_type=aws.instance_type,
        )
        with contextlib.suppress(_Captured), request.sdk_context(stand_in):
            start(trainer, layout)
    if not captured:
        raise BackendError(f"The SageMaker SDK did not build a {operation} request.")
    text = json.dumps(json.loads(json.dumps(captured, default=str)))
    return dict(json.loads(text.replace(f"s3://{stand_in}/", f"s3://{bucket}/")))
