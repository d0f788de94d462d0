"""Fixtures for the cloud backend's tests: moto in-process, AWS answers, the CLI."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli import run_cli

ROLE = "arn:aws:iam::123456789012:role/defects-training"
ACCOUNT = "123456789012"
REGION = "us-east-1"
DEFAULT_BUCKET = f"sagemaker-{REGION}-{ACCOUNT}"
GPU_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-training:2.21-gpu-py312"

Cli = Callable[..., tuple[int, str, str]]


def use_cloud_environment(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """The sagemaker backend with a role, and none of this machine's AWS settings or files
    (for module fixtures, which run before the autouse clean environment)."""
    for name in list(os.environ):
        if name.startswith(("DEFECTS_", "AWS_")):
            monkeypatch.delenv(name)
    for name, value in {
        "DEFECTS_BACKEND": "sagemaker",
        "DEFECTS_ROLE_ARN": ROLE,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": str(root / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)


def refuse_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to open a network connection fail."""

    def refuse(self: socket.socket, address: Any) -> None:
        raise AssertionError(f"network connection attempted to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder: prepared data and runs/ land here."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def cloud_env(monkeypatch: pytest.MonkeyPatch, workdir: Path) -> None:
    use_cloud_environment(monkeypatch, workdir)


@pytest.fixture
def aws(cloud_env: None) -> Iterator[None]:
    """moto in this process, with its fake credentials (account 123456789012)."""
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test."""
    refuse_connections(monkeypatch)


class AwsAnswers:
    """Answers of our own for chosen AWS calls, on every boto3 client made afterwards."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import botocore.handlers

        self._handlers = list(botocore.handlers.BUILTIN_HANDLERS)
        monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", self._handlers)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def reply(self, event: str, status: int, parsed: dict[str, Any]) -> None:
        """Answer ``event`` (``service.Operation``) with ``parsed``, sending nothing."""
        from botocore.awsrequest import AWSResponse

        def record(params: dict[str, Any], **_: Any) -> None:
            self.calls.append((event, dict(params)))

        def answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
            return AWSResponse("https://answered.invalid", status, {}, None), parsed

        self._handlers.append((f"before-parameter-build.{event}", record))
        self._handlers.append((f"before-call.{event}", answer))

    def error(self, event: str, status: int, code: str, message: str) -> None:
        self.reply(event, status, {"Error": {"Code": code, "Message": message}})

    def amend(self, event: str, **fields: Any) -> None:
        """Let the call through, then change ``fields`` of its parsed response."""

        def change(parsed: dict[str, Any], **_: Any) -> None:
            parsed.update(fields)

        self._handlers.append((f"after-call.{event}", change))

    def raise_before(self, event: str, error: BaseException) -> None:
        def fail(**_: Any) -> None:
            raise error

        self._handlers.append((f"before-call.{event}", fail))


@pytest.fixture
def aws_answers(monkeypatch: pytest.MonkeyPatch) -> AwsAnswers:
    return AwsAnswers(monkeypatch)


@pytest.fixture
def cli() -> Cli:
    """Run ``defects ARGS...``; returns (exit code, stdout, stderr)."""
    return run_cli


def s3_contents() -> dict[str, list[str]]:
    """Every bucket in moto and the keys in it."""
    import boto3

    s3 = boto3.client("s3", region_name=REGION)
    return {
        bucket["Name"]: [
            item["Key"] for item in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", [])
        ]
        for bucket in s3.list_buckets()["Buckets"]
    }


def capture_create_training_job(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every CreateTrainingJob request the sagemaker backend sends from now on, as sent."""
    import copy

    from defects.backends.cloud.aws import Account

    requests: list[dict[str, Any]] = []
    original = Account.boto_session

    def capturing_session(self: Account) -> Any:
        session = original(self)
        session.events.register(
            "before-parameter-build.sagemaker.CreateTrainingJob",
            lambda params, **_: requests.append(copy.deepcopy(params)),
            unique_id="capture-create-training-job",
        )
        return session

    monkeypatch.setattr(Account, "boto_session", capturing_session)
    return requests


def artifacts_in_s3(workdir: Path, bucket: str, job_name: str) -> None:
    """The model and output archives SageMaker writes for a finished job (moto writes none)."""
    import json

    import boto3

    from defects.backends.artifacts import pack

    made = workdir / "made"
    (made / "model").mkdir(parents=True)
    (made / "model" / "class_names.json").write_text('["good", "oil"]')
    (made / "data").mkdir()
    (made / "data" / "history.json").write_text(
        json.dumps({"epoch": [1, 2], "loss": [0.9, 0.5], "accuracy": [0.5, 0.75]})
    )
    validation = {
        "accuracy": 0.75,
        "macro_f1": 0.7,
        "class_names": ["good", "oil"],
        "confusion_matrix": [[1, 1], [0, 2]],
    }
    (made / "data" / "metrics.json").write_text(json.dumps({"validation": validation}))
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=bucket)
    for folder, archive in (("model", "model.tar.gz"), ("data", "output.tar.gz")):
        pack(made / folder, made / archive)
        s3.upload_file(str(made / archive), bucket, f"defects/jobs/{job_name}/output/{archive}")
