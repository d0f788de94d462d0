"""Following a SageMaker job: its log, its end (completed, failed, stopped), Ctrl-C, and
`--detach` with `defects history JOB` fetching the results later."""

from __future__ import annotations

import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import click
import pytest

from defects.backends.base import CloudOptions, TrainingJob
from defects.backends.cloud import SageMakerBackend, follow
from defects.backends.cloud.follow import LOG_GROUP
from defects.backends.launcher import source_dir
from defects.cli.options import make_backend
from defects.errors import TrainingFailed, TrainingInterrupted
from defects.settings import resolve
from defects.training import contract
from tests.cloud.conftest import (
    DEFAULT_BUCKET,
    GPU_IMAGE,
    REGION,
    ROLE,
    AwsAnswers,
    Cli,
    artifacts_in_s3,
)

JOB = "follow-job"
OUTPUT = f"s3://{DEFAULT_BUCKET}/defects/jobs/{JOB}/output"


@pytest.fixture
def backend(aws: None) -> SageMakerBackend:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=DEFAULT_BUCKET)
    backend = SageMakerBackend(resolve())
    backend.poll_seconds = 0
    return backend


def _job(workdir: Path, **options: Any) -> TrainingJob:
    run_dir = workdir / "runs" / JOB
    run_dir.mkdir(parents=True)
    dataset = f"s3://{DEFAULT_BUCKET}/defects/datasets/d0"
    return TrainingJob(
        name=JOB,
        hyperparameters=dict(contract.hyperparameter_defaults()),
        channels={split: f"{dataset}/{split}" for split in ("train", "validation", "test")},
        run_dir=run_dir,
        source_dir=source_dir(workdir / "code"),
        options=CloudOptions(**options),
    )


def _started(bucket: str = DEFAULT_BUCKET) -> None:
    """A job as SageMaker holds it once started (moto: Completed at once, no artifact)."""
    boto3.client("sagemaker", region_name=REGION).create_training_job(
        TrainingJobName=JOB,
        AlgorithmSpecification={"TrainingImage": GPU_IMAGE, "TrainingInputMode": "File"},
        RoleArn=ROLE,
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/defects/jobs"},
        ResourceConfig={"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )


def _log(*lines: str) -> None:
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=LOG_GROUP)
    stream = f"{JOB}/algo-1-1795000000"
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": now + index, "message": line} for index, line in enumerate(lines)],
    )


def _interrupt_the_wait(
    monkeypatch: pytest.MonkeyPatch,
    aws_answers: AwsAnswers,
    interruption: type[KeyboardInterrupt] = KeyboardInterrupt,
) -> None:
    """The job stays InProgress and Ctrl-C (or SIGTERM) arrives while waiting for the next
    poll."""

    def ctrl_c(seconds: float) -> None:
        raise interruption

    aws_answers.amend("sagemaker.DescribeTrainingJob", TrainingJobStatus="InProgress")
    aws_answers.reply("sagemaker.StopTrainingJob", 200, {})
    monkeypatch.setattr(follow.time, "sleep", ctrl_c)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_train_starts_the_job_and_returns_where_sagemaker_put_the_model(
    backend: SageMakerBackend, workdir: Path
) -> None:
    with backend.open_storage() as store:
        result = backend.train(_job(workdir), store)
    assert result.model_uri == f"{OUTPUT}/model.tar.gz"
    assert result.output_uri == f"{OUTPUT}/output.tar.gz"
    assert result.detached is False
    assert result.details["training_job_arn"] == (
        f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{JOB}"
    )
    assert result.details["instance_type"] == "ml.g4dn.xlarge"


def test_job_log_gets_the_status_changes_and_the_cloudwatch_lines(
    backend: SageMakerBackend, workdir: Path
) -> None:
    _started()
    _log("Epoch 1/2", "Epoch 2/2")
    job = _job(workdir)
    backend.wait(job, backend.layout())
    assert job.log_path.read_text().splitlines() == [
        "[sagemaker] Starting: Preparing the instances for training",
        "Epoch 1/2",
        "Epoch 2/2",
    ]


def test_failed_job_raises_its_failure_reason(
    backend: SageMakerBackend, aws_answers: AwsAnswers, workdir: Path
) -> None:
    reason = "AlgorithmError: The class folder 'oil' has no images., exit code: 1"
    aws_answers.amend(
        "sagemaker.DescribeTrainingJob", TrainingJobStatus="Failed", FailureReason=reason
    )
    _started()
    with pytest.raises(TrainingFailed) as caught:
        backend.wait(_job(workdir), backend.layout())
    assert caught.value.message == reason
    assert f"streams {JOB}/..." in caught.value.hint


def test_a_job_whose_volume_filled_up_says_how_to_resume_with_a_larger_one(
    backend: SageMakerBackend, aws_answers: AwsAnswers, workdir: Path
) -> None:
    reason = (
        f"AlgorithmError: {contract.DISK_FULL_REASON}: the checkpoints, the model and the "
        "outputs need space on the disk of the job's folder., exit code: 1"
    )
    aws_answers.amend(
        "sagemaker.DescribeTrainingJob", TrainingJobStatus="Failed", FailureReason=reason
    )
    _started()
    with pytest.raises(TrainingFailed) as caught:
        backend.wait(_job(workdir, volume_size=30), backend.layout())
    assert caught.value.headline == "the disk is full"
    assert caught.value.message == reason
    assert caught.value.hint == (
        "The instance's training volume is full: raise --volume-size (now 30 GB); "
        f"`defects train --resume {JOB} --volume-size N` continues it from its checkpoints."
    )


def test_stopped_job_points_at_the_time_limit(
    backend: SageMakerBackend, aws_answers: AwsAnswers, workdir: Path
) -> None:
    aws_answers.amend(
        "sagemaker.DescribeTrainingJob",
        TrainingJobStatus="Stopped",
        SecondaryStatus="MaxRuntimeExceeded",
    )
    _started()
    with pytest.raises(TrainingInterrupted) as caught:
        backend.wait(_job(workdir, max_runtime=3600), backend.layout())
    assert caught.value.message == (
        f"The SageMaker job {JOB} was stopped (MaxRuntimeExceeded) before it finished."
    )
    assert caught.value.hint == (
        f"`defects train --resume {JOB}` continues it from its checkpoints; "
        "if it ran out of time, add --max-runtime N (now 3600 s) to give it more."
    )


def test_ctrl_c_stops_the_job_when_nobody_can_be_asked(
    backend: SageMakerBackend,
    aws_answers: AwsAnswers,
    monkeypatch: pytest.MonkeyPatch,
    workdir: Path,
) -> None:
    _interrupt_the_wait(monkeypatch, aws_answers)
    _started()
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    with pytest.raises(KeyboardInterrupt):
        backend.wait(_job(workdir), backend.layout())
    assert aws_answers.calls == [("sagemaker.StopTrainingJob", {"TrainingJobName": JOB})]


def test_ctrl_c_leaves_the_job_running_when_the_user_says_so(
    backend: SageMakerBackend,
    aws_answers: AwsAnswers,
    monkeypatch: pytest.MonkeyPatch,
    workdir: Path,
) -> None:
    _interrupt_the_wait(monkeypatch, aws_answers)
    monkeypatch.setattr(sys, "stdin", _Terminal())
    questions: list[str] = []

    def answer_no(text: str, **_: Any) -> bool:
        questions.append(text)
        return False

    monkeypatch.setattr(click, "confirm", answer_no)
    _started()
    # The CLI's backend asks on a terminal.
    asking = make_backend(backend.settings)
    asking.poll_seconds = 0  # type: ignore[attr-defined]
    with pytest.raises(KeyboardInterrupt):
        asking.wait(_job(workdir), asking.layout())  # type: ignore[attr-defined]
    assert questions == [f"Stop the SageMaker job {JOB} too? It is billed until it stops."]
    assert aws_answers.calls == []


def test_sigterm_stops_the_job_without_asking_even_on_a_terminal(
    backend: SageMakerBackend,
    aws_answers: AwsAnswers,
    monkeypatch: pytest.MonkeyPatch,
    workdir: Path,
) -> None:
    from defects.signals import Terminated

    _interrupt_the_wait(monkeypatch, aws_answers, Terminated)
    monkeypatch.setattr(sys, "stdin", _Terminal())
    monkeypatch.setattr(click, "confirm", lambda *_, **__: pytest.fail("nobody is there to ask"))
    _started()
    asking = make_backend(backend.settings)
    asking.poll_seconds = 0  # type: ignore[attr-defined]
    with pytest.raises(Terminated):
        asking.wait(_job(workdir), asking.layout())  # type: ignore[attr-defined]
    assert aws_answers.calls == [("sagemaker.StopTrainingJob", {"TrainingJobName": JOB})]


def test_detach_starts_the_job_and_returns_without_fetching(
    aws: None, cli: Cli, tiny_photos: Path, workdir: Path
) -> None:
    code, out, err = cli("train", "--data", str(tiny_photos), "--job-name", JOB, "--detach")
    assert code == 0, err
    assert out.strip() == (
        f"started: job {JOB} on sagemaker, detached; `defects history {JOB}` fetches its "
        f"results into runs/{JOB} once it has finished"
    )
    record = json.loads((workdir / "runs" / JOB / "job.json").read_text())
    assert record["status"] == "detached"
    assert not (workdir / "runs" / JOB / "history.json").exists()
    described = boto3.client("sagemaker", region_name=REGION).describe_training_job(
        TrainingJobName=JOB
    )
    assert described["AlgorithmSpecification"]["TrainingImage"] == GPU_IMAGE


def _finished_remotely(workdir: Path, bucket: str = DEFAULT_BUCKET) -> None:
    """A job SageMaker ran and whose artifacts it wrote, as a detached job leaves it."""
    _started(bucket)
    artifacts_in_s3(workdir, bucket, JOB)


def test_history_fetches_a_finished_job_from_s3(aws: None, cli: Cli, workdir: Path) -> None:
    _finished_remotely(workdir)
    code, out, err = cli("history", JOB)
    assert code == 0, err
    assert "0.7500" in out
    run_dir = workdir / "runs" / JOB
    for name in ("history.json", "metrics.json", "model/class_names.json", "curves.png"):
        assert (run_dir / name).is_file(), name


def test_history_fetches_from_where_the_job_record_says(
    aws: None, cli: Cli, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _finished_remotely(workdir, bucket="team-bucket")
    monkeypatch.delenv("DEFECTS_BACKEND")
    run_dir = workdir / "runs" / JOB
    run_dir.mkdir(parents=True)
    record = {"backend": "sagemaker", "bucket": "team-bucket", "prefix": "defects"}
    (run_dir / "job.json").write_text(json.dumps({**record, "status": "detached"}))
    code, _, err = cli("history", JOB)
    assert code == 0, err
    assert json.loads((run_dir / "job.json").read_text())["status"] == "completed"


def test_history_of_a_running_job_says_it_has_not_finished(
    aws: None, aws_answers: AwsAnswers, cli: Cli, workdir: Path
) -> None:
    _finished_remotely(workdir)
    aws_answers.amend(
        "sagemaker.DescribeTrainingJob", TrainingJobStatus="InProgress", SecondaryStatus="Training"
    )
    code, _, err = cli("history", JOB)
    assert code == 1
    assert f"Job {JOB} on sagemaker has not finished: InProgress (Training)." in err
    assert "Traceback" not in err
    assert not (workdir / "runs" / JOB / "history.json").exists()


def test_history_of_a_failed_job_gives_the_reason(
    aws: None, aws_answers: AwsAnswers, cli: Cli, workdir: Path
) -> None:
    _finished_remotely(workdir)
    aws_answers.amend(
        "sagemaker.DescribeTrainingJob",
        TrainingJobStatus="Failed",
        FailureReason="AlgorithmError: out of memory",
    )
    code, _, err = cli("history", JOB)
    assert code == 1
    assert "did not succeed: AlgorithmError: out of memory" in err


def test_status_of_an_unknown_job_is_none(backend: SageMakerBackend) -> None:
    assert backend.status("never-started") is None
