"""Managing SageMaker jobs: `defects jobs` lists the tool's training jobs (ListTrainingJobs),
`defects stop` stops one (StopTrainingJob), `defects logs` reads a detached one's CloudWatch
log; against moto."""

from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
import pytest

from defects.backends.cloud.follow import LOG_GROUP
from tests.cloud.conftest import GPU_IMAGE, REGION, ROLE, AwsAnswers, Cli
from tests.jobfolders import job_folder


def _started(name: str) -> None:
    boto3.client("sagemaker", region_name=REGION).create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": GPU_IMAGE, "TrainingInputMode": "File"},
        RoleArn=ROLE,
        OutputDataConfig={"S3OutputPath": "s3://bucket/defects/jobs"},
        ResourceConfig={"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )


def _detached(workdir: Path, name: str) -> Path:
    return job_folder(
        workdir / "runs", name, "detached", "2026-12-01T10:00:00+00:00", backend="sagemaker"
    )


def test_jobs_lists_the_tools_sagemaker_jobs(aws: None, cli: Cli) -> None:
    _started("defects-20261201-100000-ab12")
    _started("someone-elses-job")
    code, out, _ = cli("jobs", "--json")
    assert code == 0
    assert [(job["name"], job["status"], job["remote_status"]) for job in json.loads(out)] == [
        ("defects-20261201-100000-ab12", "completed", "Completed")
    ]


def test_a_detached_job_takes_its_status_from_sagemaker(aws: None, cli: Cli, workdir: Path) -> None:
    _detached(workdir, "defects-detached-1")
    _started("defects-detached-1")
    code, out, _ = cli("jobs", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [(job["name"], job["status"], job["backend"]) for job in listed] == [
        ("defects-detached-1", "completed", "sagemaker")
    ]
    assert listed[0]["run_dir"] == "runs/defects-detached-1"


def test_jobs_without_list_permission_warns_and_lists_local_jobs(
    aws: None, cli: Cli, workdir: Path, aws_answers: AwsAnswers, caplog: pytest.LogCaptureFixture
) -> None:
    aws_answers.error("sagemaker.ListTrainingJobs", 400, "AccessDeniedException", "no")
    _detached(workdir, "defects-detached-2")
    code, out, _ = cli("jobs", "--json")
    assert code == 0
    assert [job["status"] for job in json.loads(out)] == ["detached"]
    assert "These credentials need sagemaker:ListTrainingJobs." in caplog.text


def test_stop_asks_sagemaker_to_stop_a_detached_job(
    aws: None, cli: Cli, workdir: Path, aws_answers: AwsAnswers
) -> None:
    aws_answers.reply("sagemaker.StopTrainingJob", 200, {})
    _detached(workdir, "defects-detached-3")
    code, out, _ = cli("stop", "defects-detached-3")
    assert code == 0
    assert aws_answers.calls == [
        ("sagemaker.StopTrainingJob", {"TrainingJobName": "defects-detached-3"})
    ]
    assert out == "Asked sagemaker to stop job defects-detached-3.\n"


def test_logs_of_a_detached_job_come_from_cloudwatch(aws: None, cli: Cli, workdir: Path) -> None:
    _detached(workdir, "defects-detached-4")
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=LOG_GROUP)
    stream = "defects-detached-4/algo-1-1795000000"
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    now = int(time.time() * 1000)
    lines = [
        'defects-progress {"event": "epoch", "epoch": 1, "epochs": 1, "step": 2, "steps": 2}',
        "Epoch 1/1 - 3s - loss: 0.9000",
    ]
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": now + i, "message": line} for i, line in enumerate(lines)],
    )
    code, out, _ = cli("logs", "defects-detached-4")
    assert code == 0
    assert out == "Epoch 1/1 - 3s - loss: 0.9000\n"
