"""`--dry-run` on the sagemaker backend: the exact CreateTrainingJob request, made without
credentials and without the network."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cloud.conftest import (
    GPU_IMAGE,
    ROLE,
    Cli,
    refuse_connections,
    run_cli,
    s3_contents,
    use_cloud_environment,
)

PLACEHOLDER = "s3://sagemaker-us-east-1-<account-id>/defects"


def _dry_run(*options: str) -> dict[str, Any]:
    code, out, err = run_cli("train", "--dry-run", "--job-name", "planned", *options)
    assert code == 0, err
    request: dict[str, Any] = json.loads(out)
    return request


@pytest.fixture(scope="module")
def planned(tiny_photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The request of a default job, made with no credentials at all and no network."""
    root = tmp_path_factory.mktemp("dry-run")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(root)
        use_cloud_environment(monkeypatch, root)
        refuse_connections(monkeypatch)
        request = _dry_run("--data", str(tiny_photos))
        yield request, root


def test_dry_run_uses_the_gpu_tensorflow_image(planned: Any) -> None:
    request, _ = planned
    assert request["AlgorithmSpecification"]["TrainingImage"] == GPU_IMAGE


def test_dry_run_asks_for_one_default_gpu_instance(planned: Any) -> None:
    request, _ = planned
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.g4dn.xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 30,
    }


def test_dry_run_names_the_job_and_the_role(planned: Any) -> None:
    request, _ = planned
    assert request["TrainingJobName"] == "planned"
    assert request["RoleArn"] == ROLE


def test_dry_run_output_goes_to_the_default_bucket_of_the_account(planned: Any) -> None:
    request, _ = planned
    assert request["OutputDataConfig"] == {
        "S3OutputPath": f"{PLACEHOLDER}/jobs",
        "CompressionType": "GZIP",
    }


def test_dry_run_stops_after_six_hours_without_spot(planned: Any) -> None:
    request, _ = planned
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 6 * 3600}
    assert "EnableManagedSpotTraining" not in request


def test_dry_run_keeps_checkpoints_without_spot_so_that_a_stopped_job_resumes(
    planned: Any,
) -> None:
    request, _ = planned
    assert request["CheckpointConfig"] == {
        "S3Uri": f"{PLACEHOLDER}/jobs/planned/checkpoints",
        "LocalPath": "/opt/ml/checkpoints",
    }


def test_dry_run_channels_are_where_the_data_and_code_would_go(planned: Any) -> None:
    request, _ = planned
    channels = {
        channel["ChannelName"]: channel["DataSource"]["S3DataSource"]["S3Uri"]
        for channel in request["InputDataConfig"]
    }
    dataset = channels["train"].rsplit("/", 1)[0]
    assert dataset.startswith(f"{PLACEHOLDER}/datasets/")
    assert channels == {
        "train": f"{dataset}/train",
        "validation": f"{dataset}/validation",
        "test": f"{dataset}/test",
        "code": f"{PLACEHOLDER}/jobs/planned/input/code",
        "sm_drivers": f"{PLACEHOLDER}/jobs/planned/input/sm_drivers",
        # The default model's ImageNet weights, named by their content.
        "pretrained": channels["pretrained"],
    }
    assert channels["pretrained"].startswith(f"{PLACEHOLDER}/pretrained/efficientnet_lite0-")


def test_dry_run_starts_no_job_folder(planned: Any) -> None:
    _, root = planned
    assert not (root / "runs").exists()


def test_dry_run_uses_the_configured_bucket_and_no_role_placeholder(
    cloud_env: None, no_network: None, tiny_photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEFECTS_BUCKET", "team-bucket")
    monkeypatch.delenv("DEFECTS_ROLE_ARN")
    request = _dry_run("--data", str(tiny_photos))
    assert request["OutputDataConfig"]["S3OutputPath"] == "s3://team-bucket/defects/jobs"
    assert request["RoleArn"] == "arn:aws:iam::<account-id>:role/<DEFECTS_ROLE_ARN>"


def test_dry_run_in_another_region_uses_that_regions_image(
    cloud_env: None, no_network: None, tiny_photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    request = _dry_run("--data", str(tiny_photos))
    assert request["AlgorithmSpecification"]["TrainingImage"] == (
        "763104351884.dkr.ecr.eu-west-1.amazonaws.com/tensorflow-training:2.21-gpu-py312"
    )
    assert request["OutputDataConfig"]["S3OutputPath"] == (
        "s3://sagemaker-eu-west-1-<account-id>/defects/jobs"
    )


def test_dry_run_of_an_invalid_instance_type_is_refused(
    cloud_env: None, cli: Cli, tiny_photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEFECTS_INSTANCE_TYPE", "ml.huge")
    code, out, err = cli("train", "--dry-run", "--data", str(tiny_photos))
    assert code == 1
    assert "instance type: 'ml.huge' is not a SageMaker training instance type" in err
    assert out == ""


def test_max_wait_without_spot_is_refused_before_any_upload(
    aws: None, cli: Cli, tiny_photos: Path, workdir: Path
) -> None:
    code, _, err = cli("train", "--data", str(tiny_photos), "--max-wait", "7200")
    assert code == 2
    assert "--max-wait only applies to managed spot training." in err
    assert s3_contents() == {}
    assert not (workdir / "data").exists()


def test_max_wait_shorter_than_the_runtime_is_a_usage_error(
    cloud_env: None, cli: Cli, tiny_photos: Path
) -> None:
    code, _, err = cli(
        "train",
        "--dry-run",
        "--data",
        str(tiny_photos),
        "--spot",
        "--max-runtime",
        "7200",
        "--max-wait",
        "3600",
    )
    assert code == 2
    assert "--max-wait (3600 s) is shorter than the runtime limit (7200 s)" in err


def test_subnets_without_security_groups_are_a_usage_error(
    cloud_env: None, cli: Cli, tiny_photos: Path
) -> None:
    code, _, err = cli("train", "--dry-run", "--data", str(tiny_photos), "--subnet", "subnet-1")
    assert code == 2
    assert "needs both subnets and security groups" in err


def _modes(request: dict[str, Any]) -> dict[str, str]:
    return {
        channel["ChannelName"]: channel.get("InputMode", "File")
        for channel in request["InputDataConfig"]
    }


def test_small_channels_are_downloaded_and_fastfile_streams_every_data_channel(
    cloud_env: None, no_network: None, tiny_photos: Path
) -> None:
    auto = _modes(_dry_run("--data", str(tiny_photos)))
    streamed = _modes(_dry_run("--data", str(tiny_photos), "--input-mode", "fastfile"))
    assert {auto[name] for name in ("train", "validation", "test")} == {"File"}
    assert {streamed[name] for name in ("train", "validation", "test")} == {"FastFile"}


def test_auto_streams_a_channel_past_its_size(
    cloud_env: None, no_network: None, tiny_photos: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from defects.backends import base

    # Half of all the photos: train holds two thirds of them, validation and test a sixth.
    total = sum(path.stat().st_size for path in tiny_photos.rglob("*") if path.is_file())
    monkeypatch.setattr(base, "FASTFILE_FROM_BYTES", total // 2)
    modes = _modes(_dry_run("--data", str(tiny_photos)))
    assert modes["train"] == "FastFile"
    assert modes["validation"] == modes["test"] == "File"


def test_more_than_one_instance_is_refused_with_what_to_do_instead(
    cloud_env: None, cli: Cli, tiny_photos: Path
) -> None:
    code, _, err = cli("train", "--dry-run", "--data", str(tiny_photos), "--instance-count", "2")
    assert code == 2
    text = " ".join(err.split())
    assert "keras-team/keras#20585" in text
    assert "ml.g5.12xlarge" in text and "--max-parallel-jobs" in text
