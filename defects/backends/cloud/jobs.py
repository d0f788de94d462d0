"""This tool's SageMaker training jobs as users manage them: listed (ListTrainingJobs),
stopped (StopTrainingJob) and their CloudWatch log read back."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC
from typing import Any

from botocore.exceptions import ClientError

from defects.backends.cloud import follow
from defects.backends.cloud.aws import aws_errors, error_code, error_text
from defects.errors import BackendError
from defects.jobs.listing import RemoteJob

# Job names this tool gives (defects.jobs.new_job_name); ListTrainingJobs filters on it.
NAME_PREFIX = "defects"
MAX_LISTED = 200


def list_jobs(client: Any, name_prefix: str = NAME_PREFIX) -> list[RemoteJob]:
    """This tool's training jobs, newest first (at most :data:`MAX_LISTED`)."""
    found: list[RemoteJob] = []
    with aws_errors("list the SageMaker training jobs", "sagemaker:ListTrainingJobs"):
        pages = client.get_paginator("list_training_jobs").paginate(
            NameContains=name_prefix, SortBy="CreationTime", SortOrder="Descending"
        )
        for page in pages:
            for summary in page.get("TrainingJobSummaries", []):
                if summary["TrainingJobName"].startswith(name_prefix):
                    found.append(_remote_job(summary))
            if len(found) >= MAX_LISTED:
                break
    return sorted(found, key=lambda job: job.started or "", reverse=True)[:MAX_LISTED]


def _remote_job(summary: dict[str, Any]) -> RemoteJob:
    status = str(summary["TrainingJobStatus"])
    created = summary.get("CreationTime")
    ended = summary.get("TrainingEndTime")
    seconds = (ended - created).total_seconds() if created and ended else None
    return RemoteJob(
        job_name=summary["TrainingJobName"],
        state=follow.status_of(summary["TrainingJobName"], summary).state,
        remote_status=status,
        started=created.astimezone(UTC).isoformat(timespec="seconds") if created else None,
        seconds=seconds,
    )


def stop_job(client: Any, job_name: str) -> None:
    try:
        with aws_errors(f"stop the SageMaker job {job_name}", "sagemaker:StopTrainingJob"):
            client.stop_training_job(TrainingJobName=job_name)
    except BackendError as error:
        refusal = error.__cause__
        if isinstance(refusal, ClientError) and error_code(refusal) == "ValidationException":
            raise BackendError(
                f"SageMaker will not stop job {job_name}: {error_text(refusal)}.",
                hint="A job that has already ended cannot be stopped; see `defects jobs`.",
            ) from refusal
        raise


def read_log(
    client: Any,
    logs: Any,
    job_name: str,
    on_line: Callable[[str], None],
    follow_job: bool,
    poll_seconds: float,
) -> None:
    """The job's CloudWatch log so far, or until the job ends with ``follow_job``."""
    follower = follow.LogFollower(logs, job_name, io.StringIO(), on_line=on_line)
    if not follow_job:
        follower.pump()
        return
    with aws_errors(f"follow the SageMaker job {job_name}", "sagemaker:DescribeTrainingJob"):
        follow.follow(job_name, client, follower, io.StringIO(), poll_seconds)
