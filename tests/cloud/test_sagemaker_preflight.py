"""The sagemaker backend's preflight: every failure stops the job before anything is
uploaded, exits 1 and names its fix."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError

from defects.backends.cloud import SageMakerBackend
from defects.errors import BackendError
from defects.settings import resolve
from tests.cloud.conftest import ACCOUNT, DEFAULT_BUCKET, GPU_IMAGE, REGION, AwsAnswers, Cli
from tests.cloud.conftest import s3_contents as s3_now


def _train(cli: Cli, photos: Path) -> tuple[int, str, str]:
    return cli("train", "--data", str(photos), "--job-name", "preflight-job")


def _nothing_done(workdir: Path) -> bool:
    # The check runs before the data is even prepared, let alone staged.
    return not (workdir / "data").exists() and not (workdir / "runs").exists()


def test_all_checks_pass_in_order_against_moto(aws: None) -> None:
    checks = SageMakerBackend(resolve()).checks()
    assert [(check.name, check.ok) for check in checks] == [
        ("credentials", True),
        ("execution role", True),
        ("region", True),
        ("S3 endpoint", True),
        ("identity", True),
        ("role account", True),
        ("bucket", True),
        ("instance type", True),
    ]
    assert checks[6].detail == f"{DEFAULT_BUCKET} does not exist yet; it will be created (private)"
    assert checks[7].detail == f"ml.g4dn.xlarge (GPU), image {GPU_IMAGE}"


def test_no_credentials_names_what_is_missing(
    cloud_env: None, no_network: None, cli: Cli, tiny_photos: Path, workdir: Path
) -> None:
    code, _, err = _train(cli, tiny_photos)
    assert code == 1
    assert "sagemaker backend: credentials: no AWS credentials found" in err
    assert "aws configure" in err
    assert "Traceback" not in err
    assert _nothing_done(workdir)


def test_no_role_names_the_variable(
    aws: None, monkeypatch: pytest.MonkeyPatch, cli: Cli, tiny_photos: Path, workdir: Path
) -> None:
    monkeypatch.delenv("DEFECTS_ROLE_ARN")
    code, _, err = _train(cli, tiny_photos)
    assert code == 1
    assert "execution role: DEFECTS_ROLE_ARN is not set" in err
    assert "AmazonSageMakerFullAccess" in err
    assert s3_now() == {}
    assert _nothing_done(workdir)


def test_unknown_region_is_refused(
    aws: None, monkeypatch: pytest.MonkeyPatch, cli: Cli, tiny_photos: Path, workdir: Path
) -> None:
    monkeypatch.setenv("AWS_REGION", "mars-north-1")
    code, _, err = _train(cli, tiny_photos)
    assert code == 1
    assert "region: 'mars-north-1' (env AWS_REGION) is not a region where SageMaker runs" in err
    assert s3_now() == {}
    assert _nothing_done(workdir)


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:5555"),
        ("AWS_ENDPOINT_URL", "http://localhost:4566"),
    ],
)
def test_emulator_endpoint_is_refused(
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
    tiny_photos: Path,
    workdir: Path,
    variable: str,
    url: str,
) -> None:
    monkeypatch.setenv(variable, url)
    code, _, err = _train(cli, tiny_photos)
    assert code == 1
    assert f"S3 endpoint: {variable}={url} is a local emulator" in err
    assert "Unset AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL" in err
    monkeypatch.delenv(variable)
    assert s3_now() == {}
    assert _nothing_done(workdir)


def test_rejected_credentials_say_so(
    aws: None, aws_answers: AwsAnswers, cli: Cli, tiny_photos: Path, workdir: Path
) -> None:
    aws_answers.error(
        "sts.GetCallerIdentity", 403, "ExpiredToken", "The security token included has expired"
    )
    code, _, err = _train(cli, tiny_photos)
    assert code == 1
    assert "identity: AWS refused these credentials: ExpiredToken" in err
    assert "aws sso login" in err
    assert s3_now() == {}
    assert _nothing_done(workdir)


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="https://sts.us-east-1.amazonaws.com/"),
        ConnectTimeoutError(endpoint_url="https://sts.us-east-1.amazonaws.com/"),
    ],
)
def test_no_network_is_told_apart_from_missing_credentials(
    aws: None,
    aws_answers: AwsAnswers,
    cli: Cli,
    tiny_photos: Path,
    workdir: Path,
    error: Exception,
) -> None:
    aws_answers.raise_before("sts.GetCallerIdentity", error)
    code, _, err = _train(cli, tiny_photos)
    assert code == 1
    assert f"identity: Could not ask AWS who these credentials belong to: {error}" in err
    assert "hint: AWS did not answer: check the network connection, the proxy" in err
    assert "aws configure" not in err and "Configure AWS credentials" not in err
    assert _nothing_done(workdir)


def test_role_of_another_account_is_refused(
    aws: None, monkeypatch: pytest.MonkeyPatch, cli: Cli, tiny_photos: Path, workdir: Path
) -> None:
    monkeypatch.setenv("DEFECTS_ROLE_ARN", "arn:aws:iam::999999999999:role/elsewhere")
    code, _, err = _train(cli, tiny_photos)
    assert code == 1
    assert (
        f"role account: the role is in account 999999999999, these credentials in {ACCOUNT}" in err
    )
    assert s3_now() == {}
    assert _nothing_done(workdir)


def test_forbidden_bucket_is_refused(
    aws: None,
    aws_answers: AwsAnswers,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
    tiny_photos: Path,
    workdir: Path,
) -> None:
    monkeypatch.setenv("DEFECTS_BUCKET", "someone-elses-bucket")
    aws_answers.error("s3.HeadBucket", 403, "403", "Forbidden")
    code, _, err = _train(cli, tiny_photos)
    assert code == 1
    assert "bucket: someone-elses-bucket exists but these credentials may not use it" in err
    assert "DEFECTS_BUCKET" in err
    assert s3_now() == {}
    assert _nothing_done(workdir)


def test_bucket_in_another_region_is_refused(
    aws: None, monkeypatch: pytest.MonkeyPatch, cli: Cli, tiny_photos: Path, workdir: Path
) -> None:
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket="team-eu", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    monkeypatch.setenv("DEFECTS_BUCKET", "team-eu")
    code, _, err = _train(cli, tiny_photos)
    assert code == 1
    assert f"bucket: team-eu is in eu-west-1, and the job would run in {REGION}" in err
    assert s3_now() == {"team-eu": []}
    assert _nothing_done(workdir)


def test_local_instance_type_is_refused(
    aws: None, monkeypatch: pytest.MonkeyPatch, cli: Cli, tiny_photos: Path, workdir: Path
) -> None:
    monkeypatch.setenv("DEFECTS_INSTANCE_TYPE", "local_gpu")
    code, _, err = _train(cli, tiny_photos)
    assert code == 1
    assert "instance type: 'local_gpu' is not a SageMaker training instance type" in err
    assert "DEFECTS_BACKEND=local" in err
    assert s3_now() == {}
    assert _nothing_done(workdir)


def test_check_raises_the_first_failure_as_a_backend_error(aws: None) -> None:
    settings = resolve(environ={"DEFECTS_BACKEND": "sagemaker", "DEFECTS_INSTANCE_TYPE": "ml.x1"})
    with pytest.raises(BackendError) as caught:
        SageMakerBackend(settings).check()
    assert caught.value.message == (
        "sagemaker backend: execution role: DEFECTS_ROLE_ARN is not set"
    )


def test_cpu_instance_type_gets_the_cpu_image(cloud_env: None) -> None:
    settings = resolve(environ={"DEFECTS_INSTANCE_TYPE": "ml.m5.xlarge", "AWS_REGION": REGION})
    assert SageMakerBackend(settings).image == (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-training:2.21-cpu-py312"
    )


def test_default_bucket_offline_asks_nobody(cloud_env: None, no_network: None) -> None:
    backend = SageMakerBackend(resolve())
    assert backend.default_bucket(offline=True) == "sagemaker-us-east-1-<account-id>"


def test_default_bucket_is_named_after_the_account(aws: None) -> None:
    assert SageMakerBackend(resolve()).default_bucket() == DEFAULT_BUCKET
