"""The ``sagemaker`` backend: a SageMaker training job, with the data in real S3."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

from defects import signals
from defects.backends import modeltrainer
from defects.backends.base import (
    Backend,
    Check,
    CloudOptions,
    Confirm,
    JobStatus,
    TrainingJob,
    TrainingResult,
)
from defects.backends.cloud import dry_run, follow, jobs, preflight, request
from defects.backends.cloud.aws import Account, aws_errors, error_code, failure_hint
from defects.console import log
from defects.console.live import JobOutput
from defects.errors import BackendError
from defects.jobs.listing import RemoteJob
from defects.settings import Settings
from defects.storage import Layout, Storage, open_aws


class SageMakerBackend(Backend):
    name = "sagemaker"
    resumes_in_place = False
    # Seconds between two DescribeTrainingJob calls while following a job.
    poll_seconds = 15.0

    def __init__(self, settings: Settings, confirm: Confirm | None = None) -> None:
        super().__init__(settings, confirm)
        self.aws = Account(settings)

    @property
    def instance_type(self) -> str:
        return self.aws.instance_type

    @property
    def billed_instance_type(self) -> str:
        return self.instance_type

    @property
    def image(self) -> str:
        return self.aws.image

    def boto_session(self) -> Any:
        return self.aws.boto_session()

    def default_bucket(self, offline: bool = False) -> str:
        return self.aws.default_bucket(offline)

    def layout(self, offline: bool = False) -> Layout:
        return self.aws.layout(offline)

    def open_storage(self) -> AbstractContextManager[Storage]:
        return open_aws(self.layout(), self.settings.region, self.boto_session())

    def checks(self) -> list[Check]:
        return preflight.run_checks(self.aws)

    def check_options(self, options: CloudOptions) -> None:
        """Every cloud option applies here; they were checked when the options were made."""

    def describe(self, job: TrainingJob, layout: Layout) -> dict[str, Any]:
        """The exact ``CreateTrainingJob`` request (see :mod:`.dry_run`)."""
        return dry_run.describe(self.aws, job, layout)

    def train(self, job: TrainingJob, store: Storage) -> TrainingResult:
        self.start(job, store.layout)
        if job.options.detach:
            log.info(
                "Job %s runs on its own now; `defects history %s` fetches its results "
                "once it has finished.",
                job.name,
                job.name,
            )
            output = store.layout.job_output(job.name)
            return TrainingResult(
                job_name=job.name,
                model_uri=str(output.join("model.tar.gz")),
                output_uri=str(output.join("output.tar.gz")),
                details={"instance_type": self.instance_type, "image": self.image},
                detached=True,
            )
        return self.wait(job, store.layout)

    def trainer(self, job: TrainingJob, layout: Layout) -> Any:
        """The ``ModelTrainer`` of ``job`` with this backend's role, image and instance: a
        training job starts it, a tuning job is built on it."""
        if not self.settings.role_arn:
            raise BackendError("DEFECTS_ROLE_ARN is not set.", hint=preflight.ROLE_HINT)
        session = modeltrainer.make_session(
            self.settings.region, layout.bucket, self.boto_session()
        )
        with request.quiet_sdk():
            return request.make_trainer(
                job,
                layout,
                session=session,
                role=str(self.settings.role_arn),
                image=self.image,
                instance_type=self.instance_type,
            )

    def start(self, job: TrainingJob, layout: Layout) -> None:
        """Upload the code and create the training job (the data is already staged)."""
        trainer = self.trainer(job, layout)
        boto_session = self.boto_session()
        log.info(
            "Starting SageMaker training job %s on %s%s (image %s).",
            job.name,
            self.instance_type,
            ", managed spot" if job.options.spot else "",
            self.image,
        )
        client = boto_session.client("sagemaker")
        try:
            with (
                modeltrainer.ctrl_c_as_exception(),
                request.sdk_context(layout.bucket),
                request.quiet_sdk(),
            ):
                trainer.train(wait=False, logs=False)
        except modeltrainer.Interrupted as signalled:
            # Ctrl-C while the SDK uploaded the code or created the job: did it start?
            with contextlib.suppress(BackendError):
                if self.status(job.name) is not None:
                    asking = self.confirm if signalled.signum == signal.SIGINT else None
                    follow.after_interrupt(job.name, client, asking)
            raise signals.interruption(signalled.signum) from None
        except ClientError as error:
            raise request.refused(error, self.instance_type) from error
        except (BotoCoreError, S3UploadFailedError) as error:
            raise BackendError(
                f"Could not start the SageMaker job {job.name}: {error}.",
                hint=failure_hint(
                    error, "Check the network and the credentials (`defects doctor`)."
                ),
            ) from error
        region = self.settings.region
        log.info(
            "Job %s created: https://%s.console.aws.amazon.com/sagemaker/home?region=%s#/jobs/%s",
            job.name,
            region,
            region,
            job.name,
        )

    def wait(self, job: TrainingJob, layout: Layout) -> TrainingResult:
        """Follow a started job to its end, with its status changes and its CloudWatch log on
        stderr and in ``job.log``. Ctrl-C asks whether to stop the job (it runs, and is
        billed, on its own) and then raises KeyboardInterrupt."""
        boto_session = self.boto_session()
        client = boto_session.client("sagemaker")
        with job.log_path.open("a") as job_log, JobOutput() as output:
            follower = follow.LogFollower(
                boto_session.client("logs"), job.name, job_log, on_line=output.feed
            )
            try:
                description = follow.follow(job.name, client, follower, job_log, self.poll_seconds)
            except KeyboardInterrupt as error:
                # SIGTERM has nobody to ask: the job is stopped.
                asking = None if isinstance(error, signals.Terminated) else self.confirm
                follow.after_interrupt(job.name, client, asking)
                raise
            except (ClientError, BotoCoreError) as error:
                raise BackendError(
                    f"Lost track of the SageMaker job {job.name}: {error}. It keeps running.",
                    hint=f"`defects history {job.name}` fetches its results once it has "
                    "finished; the SageMaker console shows its progress.",
                ) from error
        return follow.result(job, description, job.options, layout)

    def remote_jobs(self) -> list[RemoteJob]:
        return jobs.list_jobs(self.boto_session().client("sagemaker"))

    def stop(self, job_name: str) -> bool:
        jobs.stop_job(self.boto_session().client("sagemaker"), job_name)
        return True

    def read_log(self, job_name: str, on_line: Callable[[str], None], follow: bool) -> bool:
        session = self.boto_session()
        jobs.read_log(
            session.client("sagemaker"),
            session.client("logs"),
            job_name,
            on_line,
            follow,
            self.poll_seconds,
        )
        return True

    def status(self, job_name: str) -> JobStatus | None:
        client = self.boto_session().client("sagemaker")
        try:
            with aws_errors(
                f"look up the SageMaker job {job_name}", "sagemaker:DescribeTrainingJob"
            ):
                description = client.describe_training_job(TrainingJobName=job_name)
        except BackendError as error:
            missing = error.__cause__
            if isinstance(missing, ClientError) and error_code(missing) in {
                "ValidationException",
                "ResourceNotFound",
            }:
                return None
            raise
        return follow.status_of(job_name, description)
