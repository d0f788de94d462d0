"""`defects train --resume` on the sagemaker backend, against moto: a stopped job is
continued by a new training job that points at the first attempt's checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cloud.conftest import DEFAULT_BUCKET, AwsAnswers, Cli, capture_create_training_job

JOB = "cloud-stopped"


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    return capture_create_training_job(monkeypatch)


@pytest.fixture
def stopped_job(
    aws: None, aws_answers: AwsAnswers, cli: Cli, tiny_photos: Path, workdir: Path
) -> Path:
    """A job that SageMaker stopped (its runtime ran out) before it finished."""
    aws_answers.amend("sagemaker.DescribeTrainingJob", TrainingJobStatus="Stopped")
    code, _, err = cli("train", "--data", str(tiny_photos), "--job-name", JOB, "--epochs", "3")
    assert code == 1, err
    assert f"The SageMaker job {JOB} was stopped" in err
    return workdir / "runs" / JOB


def test_a_stopped_job_is_recorded_as_interrupted(stopped_job: Path) -> None:
    assert json.loads((stopped_job / "job.json").read_text())["status"] == "interrupted"


def test_resume_starts_a_new_job_on_the_first_attempts_checkpoints(
    stopped_job: Path, requests: list[dict[str, Any]], cli: Cli
) -> None:
    code, _, err = cli("train", "--resume", JOB)
    assert code == 1, err  # moto's answer for the new job says Stopped as well.
    (request,) = requests
    assert request["TrainingJobName"] == f"{JOB}-resume-1"
    assert request["CheckpointConfig"] == {
        "S3Uri": f"s3://{DEFAULT_BUCKET}/defects/jobs/{JOB}/checkpoints",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert request["HyperParameters"]["epochs"] == "3"
    record = json.loads((stopped_job.parent / f"{JOB}-resume-1" / "job.json").read_text())
    assert record["resumed_from"] == JOB
    assert record["options"]["checkpoints_of"] == JOB


def test_a_job_that_ran_out_of_time_resumes_with_more_and_a_price(
    stopped_job: Path, requests: list[dict[str, Any]], cli: Cli
) -> None:
    code, _, err = cli(
        "train", "--resume", JOB, "--max-runtime", "7200", "--volume-size", "50", "--yes"
    )
    assert code == 1, err  # moto's answer for the new job says Stopped as well.
    (request,) = requests
    assert request["StoppingCondition"]["MaxRuntimeInSeconds"] == 7200
    assert request["ResourceConfig"]["VolumeSizeInGB"] == 50
    assert request["HyperParameters"]["epochs"] == "3"  # What it learns stays the job's own.
    assert "estimate: 1 job on " in err
    record = json.loads((stopped_job.parent / f"{JOB}-resume-1" / "job.json").read_text())
    assert record["options"]["max_runtime"] == 7200
    assert record["options"]["checkpoints_of"] == JOB


def test_resume_still_refuses_other_data_or_hyperparameters(stopped_job: Path, cli: Cli) -> None:
    code, _, err = cli("train", "--resume", JOB, "--epochs", "9", "--max-runtime", "7200")
    assert code == 2
    assert "with its own data and hyperparameters; drop --epochs." in err
