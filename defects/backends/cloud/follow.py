"""Following a SageMaker training job: its status changes and its CloudWatch log on stderr
and in ``job.log``, what Ctrl-C means for a job billed on its own, and its final state."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

from defects.backends.base import CloudOptions, Confirm, JobStatus, TrainingJob, TrainingResult
from defects.backends.cloud.aws import error_code, error_text
from defects.console import err, log
from defects.errors import DISK_FULL_HEADLINE, TrainingFailed, TrainingInterrupted
from defects.storage import Layout
from defects.training import contract

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
_TERMINAL = {"Completed", "Failed", "Stopped"}
_STATES = {
    "InProgress": "running",
    "Stopping": "running",
    "Completed": "completed",
    "Failed": "failed",
    "Stopped": "stopped",
}


class LogFollower:
    """Reads the job's CloudWatch log streams forward and copies each line to a sink."""

    def __init__(
        self,
        logs: Any,
        job_name: str,
        sink: IO[str],
        on_line: Callable[[str], None] = lambda line: err.out(line, highlight=False),
    ) -> None:
        self._logs = logs
        self._prefix = f"{job_name}/"
        self._sink = sink
        self._on_line = on_line
        self._tokens: dict[str, str | None] = {}
        self._broken = False

    def pump(self) -> None:
        if self._broken:
            return
        try:
            for stream in self._stream_names():
                self._read(stream)
        except ClientError as error:
            # The log group and streams appear once the instance has started.
            if error_code(error) != "ResourceNotFoundException":
                self._give_up(error_text(error))
        except BotoCoreError as error:
            self._give_up(str(error))

    def _stream_names(self) -> list[str]:
        names: list[str] = []
        paginator = self._logs.get_paginator("describe_log_streams")
        for page in paginator.paginate(logGroupName=LOG_GROUP, logStreamNamePrefix=self._prefix):
            names += [stream["logStreamName"] for stream in page.get("logStreams", [])]
        return sorted(names)

    def _read(self, stream: str) -> None:
        token = self._tokens.get(stream)
        while True:
            arguments: dict[str, Any] = {
                "logGroupName": LOG_GROUP,
                "logStreamName": stream,
                "startFromHead": True,
            }
            if token:
                arguments["nextToken"] = token
            page = self._logs.get_log_events(**arguments)
            for event in page.get("events", []):
                message = str(event.get("message", "")).rstrip("\n")
                self._sink.write(message + "\n")
                self._on_line(message)
            self._sink.flush()
            next_token = page.get("nextForwardToken")
            if not page.get("events") or next_token == token:
                self._tokens[stream] = next_token or token
                return
            token = next_token

    def _give_up(self, reason: str) -> None:
        log.warning(
            "Cannot read the job's log from CloudWatch (%s); following its status only.", reason
        )
        self._broken = True


def follow(
    job_name: str, client: Any, follower: LogFollower, job_log: IO[str], poll_seconds: float
) -> Any:
    """Poll the job until it ends, logging its status changes and copying its log."""
    seen = 0
    while True:
        description = client.describe_training_job(TrainingJobName=job_name)
        transitions = description.get("SecondaryStatusTransitions") or []
        for transition in transitions[seen:]:
            line = f"{transition['Status']}: {transition.get('StatusMessage', '')}".strip(": ")
            job_log.write(f"[sagemaker] {line}\n")
            log.info("SageMaker job %s: %s", job_name, line)
        seen = len(transitions)
        follower.pump()
        if description["TrainingJobStatus"] in _TERMINAL:
            return description
        time.sleep(poll_seconds)


def after_interrupt(job_name: str, client: Any, confirm: Confirm | None) -> None:
    """Ctrl-C: the job runs (and is billed) on its own until stopped. Ask whether to stop it
    when there is someone to ask (``confirm``); otherwise stop it."""
    stop = True
    if confirm is not None:
        stop = confirm(f"Stop the SageMaker job {job_name} too? It is billed until it stops.")
    if not stop:
        log.warning(
            "Job %s keeps running; `defects history %s` fetches its results once it has finished.",
            job_name,
            job_name,
        )
        return
    try:
        client.stop_training_job(TrainingJobName=job_name)
    except (ClientError, BotoCoreError) as error:
        log.warning(
            "Could not stop job %s (%s); stop it in the SageMaker console or with "
            "`aws sagemaker stop-training-job --training-job-name %s`.",
            job_name,
            error,
            job_name,
        )
        return
    log.warning("Asked SageMaker to stop job %s.", job_name)


def result(
    job: TrainingJob, description: Mapping[str, Any], options: CloudOptions, layout: Layout
) -> TrainingResult:
    """The finished job's result, or its failure as :class:`TrainingFailed`."""
    status = description["TrainingJobStatus"]
    if status == "Failed":
        reason = description.get("FailureReason") or "SageMaker reports the job as Failed."
        if contract.DISK_FULL_REASON in reason:
            raise TrainingFailed(
                reason,
                hint=f"The instance's training volume is full: raise --volume-size (now "
                f"{options.volume_size} GB); `defects train --resume {job.name} --volume-size N` "
                "continues it from its checkpoints.",
                headline=DISK_FULL_HEADLINE,
            )
        raise TrainingFailed(
            reason,
            hint=f"The job's log is in {job.log_path} and in CloudWatch ({LOG_GROUP}, "
            f"streams {job.name}/...).",
        )
    if status == "Stopped":
        raise TrainingInterrupted(
            f"The SageMaker job {job.name} was stopped "
            f"({description.get('SecondaryStatus', 'Stopped')}) before it finished.",
            hint=f"`defects train --resume {job.name}` continues it from its checkpoints; "
            f"if it ran out of time, add --max-runtime N (now {options.max_runtime} s)"
            + (" or --max-wait N" if options.spot else "")
            + " to give it more.",
        )
    details: dict[str, Any] = {
        "training_job_arn": description.get("TrainingJobArn"),
        "instance_type": description.get("ResourceConfig", {}).get("InstanceType"),
        "image": description.get("AlgorithmSpecification", {}).get("TrainingImage"),
        "spot": bool(description.get("EnableManagedSpotTraining")),
    }
    # What SageMaker bills; with spot, less than the time spent training.
    for name in ("TrainingTimeInSeconds", "BillableTimeInSeconds"):
        if name in description:
            details[re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()] = description[name]
    output = layout.job_output(job.name)
    model_uri = description.get("ModelArtifacts", {}).get("S3ModelArtifacts") or (
        output.join(contract.MODEL_ARCHIVE)
    )
    return TrainingResult(
        job_name=job.name,
        model_uri=str(model_uri),
        output_uri=str(output.join(contract.OUTPUT_ARCHIVE)),
        details=details,
    )


def status_of(job_name: str, description: Mapping[str, Any]) -> JobStatus:
    status = description["TrainingJobStatus"]
    state = _STATES.get(status, "running")
    if state == "failed":
        detail = description.get("FailureReason") or "SageMaker reports the job as Failed."
    else:
        detail = f"{status} ({description.get('SecondaryStatus', status)})"
    return JobStatus(job_name, state, detail)
