"""One `defects train` on the sagemaker backend against moto: the data staged to S3 by the
same staging code, the exact CreateTrainingJob request, and what SageMaker (moto) recorded.

moto marks the job Completed at once and writes no artifact, so the run ends with the
clear "does not exist" error from fetching: nothing here pretends a model came back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from defects.training import contract
from defects.training.train import parse_hyperparameters
from tests.cloud.conftest import (
    DEFAULT_BUCKET,
    GPU_IMAGE,
    REGION,
    ROLE,
    capture_create_training_job,
    run_cli,
    use_cloud_environment,
)

JOB = "cloud-job"
JOBS = f"s3://{DEFAULT_BUCKET}/defects/jobs"
# Every hyperparameter the CLI can set, set to a value that is not its default.
HYPERPARAMETERS: dict[str, str | int | float | bool] = {
    "epochs": 2,
    "batch_size": 8,
    "learning_rate": 0.001,
    "image_size": 64,
    "seed": 7,
    "model": "efficientnet_lite0",
    "augment": False,
    "precision": "float32",
}
HYPERPARAMETER_FLAGS = [
    "--epochs",
    "2",
    "--batch-size",
    "8",
    "--learning-rate",
    "0.001",
    "--image-size",
    "64",
    "--seed",
    "7",
    "--model",
    "efficientnet_lite0",
    "--no-augment",
    "--precision",
    "float32",
]


@dataclass(frozen=True)
class CloudRun:
    code: int
    err: str
    request: dict[str, Any]
    described: dict[str, Any]
    tags: list[dict[str, str]]
    keys: list[str]
    bucket: dict[str, Any]
    record: dict[str, Any]
    dataset_uri: str


@pytest.fixture(scope="module")
def cloud_run(tiny_photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudRun]:
    from moto import mock_aws

    root = tmp_path_factory.mktemp("cloud")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(root)
        use_cloud_environment(monkeypatch, root)
        requests = capture_create_training_job(monkeypatch)
        with mock_aws():
            code, _, err = run_cli(
                "train",
                "--data",
                str(tiny_photos),
                "--job-name",
                JOB,
                *HYPERPARAMETER_FLAGS,
                "--spot",
                "--max-runtime",
                "3600",
                "--volume-size",
                "50",
                "--kms-key",
                "alias/defects",
                "--subnet",
                "subnet-0abc",
                "--security-group",
                "sg-0abc",
                "--tag",
                "team=vision",
                "--tag",
                "cost-center=42",
            )
            sagemaker = boto3.client("sagemaker", region_name=REGION)
            s3 = boto3.client("s3", region_name=REGION)
            described = sagemaker.describe_training_job(TrainingJobName=JOB)
            record = json.loads((root / "runs" / JOB / "job.json").read_text())
            yield CloudRun(
                code=code,
                err=err,
                request=requests[0],
                described=described,
                tags=sagemaker.list_tags(ResourceArn=described["TrainingJobArn"])["Tags"],
                keys=[
                    item["Key"] for item in s3.list_objects_v2(Bucket=DEFAULT_BUCKET)["Contents"]
                ],
                bucket={
                    "public": s3.get_public_access_block(Bucket=DEFAULT_BUCKET)[
                        "PublicAccessBlockConfiguration"
                    ],
                    "encryption": s3.get_bucket_encryption(Bucket=DEFAULT_BUCKET)[
                        "ServerSideEncryptionConfiguration"
                    ]["Rules"],
                },
                record=record,
                dataset_uri=f"s3://{DEFAULT_BUCKET}/defects/datasets/{record['dataset_id']}",
            )


def _channels(request: dict[str, Any]) -> dict[str, str]:
    return {
        channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3Uri"]
        for channel in request["InputDataConfig"]
    }


def test_the_job_ends_with_a_clear_error_because_moto_returns_no_model(cloud_run: CloudRun) -> None:
    assert cloud_run.code == 1
    assert (
        f"{JOBS}/{JOB}/output/model.tar.gz does not exist: the job has not finished or did "
        "not succeed." in cloud_run.err
    )
    assert "Traceback" not in cloud_run.err


def test_the_dataset_is_staged_by_the_shared_staging_code(cloud_run: CloudRun) -> None:
    prefix = cloud_run.dataset_uri.removeprefix(f"s3://{DEFAULT_BUCKET}/")
    staged = [key for key in cloud_run.keys if key.startswith(prefix + "/")]
    assert f"{prefix}/manifest.json" in staged
    # Each split as tar shards, no object per photo.
    shards = [key for key in staged if key != f"{prefix}/manifest.json"]
    assert {key.split("/")[3] for key in shards} == {"train", "validation", "test"}
    assert all(key.rsplit("/", 1)[1].startswith("part-") for key in shards)
    assert all(key.endswith(".tar") for key in shards)


def test_the_created_bucket_is_private_and_encrypted(cloud_run: CloudRun) -> None:
    assert cloud_run.bucket["public"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    assert cloud_run.bucket["encryption"][0]["ApplyServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }


def test_the_code_is_uploaded_under_the_job(cloud_run: CloudRun) -> None:
    code = sorted(
        key for key in cloud_run.keys if key.startswith(f"defects/jobs/{JOB}/input/code/")
    )
    # The entry script beside the training package, and nothing of the host's code.
    modules = sorted(path.name for path in Path(contract.__file__).parent.glob("*.py"))
    assert code == [
        f"defects/jobs/{JOB}/input/code/{name}"
        for name in ("defects/__init__.py", *(f"defects/training/{m}" for m in modules), "train.py")
    ]
    assert f"defects/jobs/{JOB}/input/sm_drivers/sm_train.sh" in cloud_run.keys


def test_request_names_the_job_exactly(cloud_run: CloudRun) -> None:
    assert cloud_run.request["TrainingJobName"] == JOB


def test_request_uses_the_gpu_tensorflow_image(cloud_run: CloudRun) -> None:
    assert cloud_run.request["AlgorithmSpecification"]["TrainingImage"] == GPU_IMAGE


def test_request_asks_for_one_gpu_instance_and_the_volume(cloud_run: CloudRun) -> None:
    assert cloud_run.request["ResourceConfig"] == {
        "InstanceType": "ml.g4dn.xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 50,
    }


def test_request_hyperparameters_are_strings(cloud_run: CloudRun) -> None:
    # The ones without a flag keep their defaults; booleans are spelled true/false.
    unflagged = {
        name: str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in contract.hyperparameter_defaults().items()
        if name not in HYPERPARAMETERS
    }
    assert cloud_run.request["HyperParameters"] == {
        **unflagged,
        "epochs": "2",
        "batch_size": "8",
        "learning_rate": "0.001",
        "image_size": "64",
        "seed": "7",
        "model": "efficientnet_lite0",
        "augment": "false",
        "precision": "float32",
    }


def test_request_hyperparameters_mean_what_the_process_backend_passes(
    cloud_run: CloudRun,
) -> None:
    hyperparameters = {**contract.hyperparameter_defaults(), **HYPERPARAMETERS}
    process_arguments = contract.hyperparameter_arguments(hyperparameters)
    cloud_arguments = [
        part
        for name, value in cloud_run.request["HyperParameters"].items()
        for part in (f"--{name}", value)
    ]
    assert parse_hyperparameters(cloud_arguments) == parse_hyperparameters(process_arguments)


def test_request_channels_point_at_the_staged_splits_and_the_code(cloud_run: CloudRun) -> None:
    assert _channels(cloud_run.request) == {
        "train": f"{cloud_run.dataset_uri}/train",
        "validation": f"{cloud_run.dataset_uri}/validation",
        "test": f"{cloud_run.dataset_uri}/test",
        "code": f"{JOBS}/{JOB}/input/code",
        "sm_drivers": f"{JOBS}/{JOB}/input/sm_drivers",
        "pretrained": _channels(cloud_run.request)["pretrained"],
    }


def test_the_pretrained_weights_are_staged_where_the_request_points(cloud_run: CloudRun) -> None:
    from defects.training import contract

    uri = _channels(cloud_run.request)["pretrained"]
    assert uri.startswith(f"s3://{DEFAULT_BUCKET}/defects/pretrained/efficientnet_lite0-")
    prefix = uri.removeprefix(f"s3://{DEFAULT_BUCKET}/") + "/"
    names = {key.removeprefix(prefix) for key in cloud_run.keys if key.startswith(prefix)}
    weights = contract.weights_name("efficientnet_lite0")
    assert names == {weights, weights + contract.DIGEST_SUFFIX}


def test_request_output_goes_to_the_job_folder_with_the_kms_key(cloud_run: CloudRun) -> None:
    assert cloud_run.request["OutputDataConfig"] == {
        "S3OutputPath": JOBS,
        "KmsKeyId": "alias/defects",
        "CompressionType": "GZIP",
    }
    assert cloud_run.record["output_uri"] == f"{JOBS}/{JOB}/output"


def test_request_spot_has_checkpoints_and_waits_twice_the_runtime(cloud_run: CloudRun) -> None:
    assert cloud_run.request["EnableManagedSpotTraining"] is True
    assert cloud_run.request["CheckpointConfig"] == {
        "S3Uri": f"{JOBS}/{JOB}/checkpoints",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert cloud_run.request["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 3600,
        "MaxWaitTimeInSeconds": 7200,
    }


def test_request_role_tags_and_vpc(cloud_run: CloudRun) -> None:
    assert cloud_run.request["RoleArn"] == ROLE
    assert cloud_run.request["Tags"] == [
        {"Key": "cost-center", "Value": "42"},
        {"Key": "team", "Value": "vision"},
    ]
    assert cloud_run.request["VpcConfig"] == {
        "SecurityGroupIds": ["sg-0abc"],
        "Subnets": ["subnet-0abc"],
    }


def test_request_runs_the_entry_point_through_the_sdk_driver(cloud_run: CloudRun) -> None:
    algorithm = cloud_run.request["AlgorithmSpecification"]
    assert algorithm["ContainerEntrypoint"] == ["/bin/bash"]
    assert algorithm["ContainerArguments"][1].endswith("/opt/ml/input/data/sm_drivers/sm_train.sh")
    assert cloud_run.request["Environment"] == {
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def test_sagemaker_recorded_the_request(cloud_run: CloudRun) -> None:
    described = cloud_run.described
    for name in (
        "HyperParameters",
        "RoleArn",
        "InputDataConfig",
        "OutputDataConfig",
        "ResourceConfig",
        "VpcConfig",
        "StoppingCondition",
        "EnableManagedSpotTraining",
        "CheckpointConfig",
    ):
        assert described[name] == cloud_run.request[name], name
    assert described["AlgorithmSpecification"]["TrainingImage"] == GPU_IMAGE
    assert sorted(cloud_run.tags, key=lambda tag: tag["Key"]) == cloud_run.request["Tags"]


def test_sagemaker_names_the_model_where_fetch_looks(cloud_run: CloudRun) -> None:
    assert cloud_run.described["TrainingJobStatus"] == "Completed"
    assert cloud_run.described["ModelArtifacts"]["S3ModelArtifacts"] == (
        f"{JOBS}/{JOB}/output/model.tar.gz"
    )
    assert f"defects/jobs/{JOB}/output/model.tar.gz" not in cloud_run.keys


def test_job_record_says_the_training_job_completed_but_its_results_are_not_here(
    cloud_run: CloudRun,
) -> None:
    # moto writes no model: the job trained, and `defects fetch` can bring its results later.
    assert cloud_run.record["status"] == "unfetched"
    assert cloud_run.record["backend"] == "sagemaker"
    assert cloud_run.record["bucket"] == DEFAULT_BUCKET
    assert cloud_run.record["details"]["spot"] is True
    assert cloud_run.record["details"]["instance_type"] == "ml.g4dn.xlarge"
