"""``sagemaker``: a SageMaker training job on a GPU instance, with the data in real S3.

The request is the shared ``ModelTrainer`` (:func:`modeltrainer.make_trainer`) in
``SAGEMAKER_TRAINING_JOB`` mode, so the cloud runs the very job that ``local`` runs in the
container. Around the SDK this backend adds what launching a paid job needs:

- a preflight (credentials, role, region, real S3, identity, bucket, instance type) that
  runs before anything is uploaded, each failure with its fix;
- ``--dry-run``: the exact ``CreateTrainingJob`` request, built by the SDK against moto's
  in-process AWS emulator, so it needs no credentials and sends nothing anywhere;
- following the job itself (the SDK's wait swallows Ctrl-C): status changes and the
  CloudWatch log go to stderr and ``job.log``; Ctrl-C asks whether to stop the remote job;
  ``--detach`` starts it and returns;
- the job's S3 layout of the other backends: SageMaker writes
  ``<prefix>/jobs/<job>/output/{model,output}.tar.gz``; the code goes to
  ``<prefix>/jobs/<job>/input/`` and spot checkpoints to ``<prefix>/jobs/<job>/checkpoints``.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import ipaddress
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import IO, Any
from urllib.parse import urlparse

import boto3
import botocore.session
import click
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import BotoCoreError, ClientError

from defects import storage
from defects.backends import modeltrainer
from defects.backends.base import Backend, Check, JobStatus, TrainingJob, TrainingResult
from defects.console import err, log
from defects.errors import BackendError, ConfigError, TrainingFailed
from defects.settings import Settings
from defects.training import contract

DEFAULT_INSTANCE_TYPE = "ml.g4dn.xlarge"
DEFAULT_MAX_RUNTIME_SECONDS = 6 * 60 * 60
# Managed spot: how long to wait for capacity, as a multiple of the runtime, unless given.
SPOT_WAIT_FACTOR = 2
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
ROLE_HINT = (
    "Set DEFECTS_ROLE_ARN to an IAM role that SageMaker may assume (trusting "
    "sagemaker.amazonaws.com) and that may read and write the bucket, e.g. one with the "
    "AmazonSageMakerFullAccess policy."
)
CREDENTIALS_HINT = (
    "Configure AWS credentials: `aws configure` or `aws sso login` (and AWS_PROFILE), or set "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
)
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z]+[0-9][a-z0-9-]*\.[a-z0-9-]+$")
_TERMINAL = {"Completed", "Failed", "Stopped"}
_STATES = {
    "InProgress": "running",
    "Stopping": "running",
    "Completed": "completed",
    "Failed": "failed",
    "Stopped": "stopped",
}
# What the request names when there is no account to ask (``--dry-run``).
_ACCOUNT_PLACEHOLDER = "<account-id>"
_DRY_RUN_BUCKET = "defects-dry-run-placeholder"


class _Captured(Exception):
    """Raised at ``before-call`` to keep a captured request from being sent."""


@dataclass(frozen=True)
class CloudOptions:
    """The ``sagemaker`` options of one job, from ``job.extras``, checked once."""

    detach: bool = False
    spot: bool = False
    max_runtime: int = DEFAULT_MAX_RUNTIME_SECONDS
    max_wait: int | None = None
    volume_size: int = 30
    kms_key: str | None = None
    subnets: list[str] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_extras(cls, extras: Mapping[str, Any]) -> CloudOptions:
        spot = bool(extras.get("spot"))
        max_runtime = int(extras.get("max_runtime") or DEFAULT_MAX_RUNTIME_SECONDS)
        max_wait = extras.get("max_wait")
        if max_wait is not None and not spot:
            raise ConfigError(
                "--max-wait only applies to managed spot training.",
                hint="Add --spot, or drop --max-wait (use --max-runtime to limit the job).",
            )
        if spot:
            max_wait = int(max_wait or SPOT_WAIT_FACTOR * max_runtime)
            if max_wait < max_runtime:
                raise ConfigError(
                    f"--max-wait ({max_wait} s) is shorter than the runtime limit "
                    f"({max_runtime} s); SageMaker counts the runtime inside the wait.",
                    hint="Make --max-wait at least --max-runtime "
                    f"(the default is {SPOT_WAIT_FACTOR}x the runtime).",
                )
        subnets = list(extras.get("subnets") or [])
        security_groups = list(extras.get("security_groups") or [])
        if bool(subnets) != bool(security_groups):
            raise ConfigError(
                "A job in a VPC needs both subnets and security groups.",
                hint="Give at least one --subnet and one --security-group, or neither.",
            )
        return cls(
            detach=bool(extras.get("detach")),
            spot=spot,
            max_runtime=max_runtime,
            max_wait=max_wait,
            volume_size=int(extras.get("volume_size") or 30),
            kms_key=extras.get("kms_key") or None,
            subnets=subnets,
            security_groups=security_groups,
            tags=dict(extras.get("tags") or {}),
        )


@dataclass(frozen=True)
class JobLayout:
    """Where one job's files go in S3: all under ``s3://<bucket>/<prefix>/jobs/<job>/``."""

    bucket: str
    jobs_key: str  # <prefix>/jobs
    job_name: str

    @classmethod
    def of(cls, job: TrainingJob) -> JobLayout:
        output = storage.S3Uri.parse(job.output_uri)
        suffix = f"/{job.name}/{contract.OUTPUT_PATH}"
        if not output.key.endswith(suffix):
            raise BackendError(
                f"The job's output location {job.output_uri} does not end in "
                f"<prefix>/jobs{suffix}, where SageMaker writes the artifacts.",
                hint="This is a bug in defects: the pipeline names the output location.",
            )
        return cls(output.bucket, output.key[: -len(suffix)], job.name)

    @property
    def output_path(self) -> str:
        # SageMaker writes <S3OutputPath>/<job>/output/model.tar.gz (and output.tar.gz).
        return f"s3://{self.bucket}/{self.jobs_key}"

    @property
    def checkpoint_uri(self) -> str:
        return f"{self.output_path}/{self.job_name}/checkpoints"


def _is_loopback(url: str) -> bool:
    host = urlparse(url if "//" in url else f"//{url}").hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


@functools.cache
def _sagemaker_regions() -> frozenset[str]:
    session = botocore.session.get_session()
    return frozenset(
        name
        for partition in session.get_available_partitions()
        for name in session.get_available_regions("sagemaker", partition_name=partition)
    )


@functools.cache
def _training_instance_types() -> frozenset[str]:
    """Every training instance type botocore's SageMaker model knows (empty if none)."""
    try:
        model = botocore.session.get_session().get_service_model("sagemaker")
        return frozenset(model.shape_for("TrainingInstanceType").enum)
    except (BotoCoreError, KeyError, AttributeError):
        return frozenset()  # The pattern check is the fallback.


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _error_text(error: ClientError) -> str:
    details = error.response.get("Error", {})
    return f"{details.get('Code', '')}: {details.get('Message', '')}".strip(": ")


@contextlib.contextmanager
def _offline_aws(region: str) -> Iterator[Any]:
    """A boto3 session whose every call is answered in this process by moto.

    The developer's AWS settings are hidden for the duration, so that no profile, endpoint
    or credential of theirs is read and nothing reaches the network.
    """
    from moto import mock_aws

    hidden = {name: os.environ.pop(name) for name in list(os.environ) if name.startswith("AWS_")}
    os.environ.update(
        {
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    try:
        with mock_aws():
            yield boto3.Session(
                aws_access_key_id="dry-run",
                aws_secret_access_key="dry-run",
                region_name=region,
            )
    finally:
        for name in [name for name in os.environ if name.startswith("AWS_")]:
            del os.environ[name]
        os.environ.update(hidden)


@contextlib.contextmanager
def _quiet_sdk() -> Iterator[None]:
    """Keep the SDK's INFO chatter (config files, default region) off the user's terminal."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    loggers = [logging.getLogger("sagemaker"), logging.getLogger("sagemaker.config")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class _LogFollower:
    """Reads the job's CloudWatch log streams forward and copies each line to a sink."""

    def __init__(self, logs: Any, job_name: str, sink: IO[str]) -> None:
        self._logs = logs
        self._prefix = f"{job_name}/"
        self._sink = sink
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
            if _error_code(error) != "ResourceNotFoundException":
                self._give_up(_error_text(error))
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
                err.out(message, highlight=False)
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


class SageMakerBackend(Backend):
    name = "sagemaker"
    embedded_storage = False
    # Seconds between two DescribeTrainingJob calls while following a job.
    poll_seconds = 15.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._session: Any = None
        self._identity: dict[str, str] | None = None

    @property
    def instance_type(self) -> str:
        return self.settings.instance_type or DEFAULT_INSTANCE_TYPE

    @property
    def image(self) -> str:
        return self.settings.training_image or modeltrainer.official_image(
            self.settings.region, self.instance_type
        )

    def boto_session(self) -> Any:
        """The boto3 session for every AWS call of this backend (the default chain)."""
        if self._session is None:
            self._session = boto3.Session(region_name=self.settings.region)
        return self._session

    def _account(self) -> str:
        if self._identity is None:
            try:
                identity = self.boto_session().client("sts").get_caller_identity()
            except ClientError as error:
                raise BackendError(
                    f"AWS refused these credentials: {_error_text(error)}.",
                    hint="Refresh them (`aws sso login`, or new access keys) and try again.",
                ) from error
            except BotoCoreError as error:
                raise BackendError(
                    f"Could not ask AWS who these credentials belong to: {error}.",
                    hint=CREDENTIALS_HINT,
                ) from error
            self._identity = {"Account": identity["Account"], "Arn": identity["Arn"]}
        return self._identity["Account"]

    def default_bucket(self, offline: bool = False) -> str:
        account = _ACCOUNT_PLACEHOLDER if offline else self._account()
        return f"sagemaker-{self.settings.region}-{account}"

    # Preflight -------------------------------------------------------------------------

    def checks(self) -> list[Check]:
        found = [
            self._check_credentials(),
            self._check_role(),
            self._check_region(),
            self._check_endpoint(),
        ]
        # Only ask AWS once the local settings are right: nothing goes to an emulator.
        if all(item.ok for item in found):
            identity = self._check_identity()
            found.append(identity)
            if identity.ok:
                found += [self._check_role_account(), self._check_bucket()]
        found.append(self._check_instance_type())
        return found

    def _check_credentials(self) -> Check:
        try:
            credentials = self.boto_session().get_credentials()
        except BotoCoreError as error:
            return Check("credentials", False, str(error), hint=CREDENTIALS_HINT)
        if credentials is None:
            return Check("credentials", False, "no AWS credentials found", hint=CREDENTIALS_HINT)
        return Check("credentials", True, f"found ({credentials.method})")

    def _check_role(self) -> Check:
        role = self.settings.role_arn
        if not role:
            return Check("execution role", False, "DEFECTS_ROLE_ARN is not set", hint=ROLE_HINT)
        return Check("execution role", True, role)

    def _check_region(self) -> Check:
        region = self.settings.region
        source = self.settings.sources.get("region", "default")
        if region not in _sagemaker_regions():
            return Check(
                "region",
                False,
                f"{region!r} ({source}) is not a region where SageMaker runs",
                hint="Set AWS_REGION to a SageMaker region, e.g. us-east-1 or eu-west-1.",
            )
        return Check("region", True, f"{region} ({source})")

    def _check_endpoint(self) -> Check:
        given = [(name, os.environ.get(name, "")) for name in _ENDPOINT_VARIABLES]
        if self.settings.s3_endpoint:
            given.insert(0, ("AWS_ENDPOINT_URL_S3", self.settings.s3_endpoint))
        for variable, url in given:
            if url and _is_loopback(url):
                return Check(
                    "S3 endpoint",
                    False,
                    f"{variable}={url} is a local emulator, and SageMaker reads real S3",
                    hint=f"Unset {' and '.join(_ENDPOINT_VARIABLES)}: they point at the "
                    "embedded S3 server, which only the process and local backends use.",
                )
        custom = next((f"{name}={url}" for name, url in given if url), None)
        return Check("S3 endpoint", True, custom or "AWS")

    def _check_identity(self) -> Check:
        try:
            account = self._account()
        except BackendError as error:
            return Check("identity", False, error.message, hint=error.hint)
        arn = self._identity["Arn"] if self._identity else "?"
        return Check("identity", True, f"{arn} (account {account})")

    def _check_role_account(self) -> Check:
        role = str(self.settings.role_arn)
        account = self._account()
        role_account = role.split(":")[4]
        if role_account != account:
            return Check(
                "role account",
                False,
                f"the role is in account {role_account}, these credentials in {account}",
                hint="SageMaker only accepts a role of the account that runs the job: use a "
                f"role of account {account} in DEFECTS_ROLE_ARN, or credentials of "
                f"account {role_account}.",
            )
        return Check("role account", True, account)

    def _check_bucket(self) -> Check:
        region = self.settings.region
        chosen = self.settings.bucket is None
        bucket = self.settings.bucket or self.default_bucket()
        arguments = {"Bucket": bucket}
        if chosen:
            # A bucket of that predictable name in another account is not ours to use.
            arguments["ExpectedBucketOwner"] = self._account()
        fix = "Set DEFECTS_BUCKET to a bucket of your account in this region."
        try:
            response = self.boto_session().client("s3").head_bucket(**arguments)
        except ClientError as error:
            code = _error_code(error)
            if code in {"404", "NoSuchBucket", "NotFound"}:
                return Check(
                    "bucket", True, f"{bucket} does not exist yet; it will be created (private)"
                )
            if code in {"403", "AccessDenied", "Forbidden"}:
                return Check(
                    "bucket",
                    False,
                    f"{bucket} exists but these credentials may not use it",
                    hint=fix,
                )
            return Check("bucket", False, f"{bucket}: {_error_text(error)}", hint=fix)
        except BotoCoreError as error:
            return Check("bucket", False, f"could not reach S3: {error}", hint=fix)
        bucket_region = response.get("BucketRegion") or response.get("ResponseMetadata", {}).get(
            "HTTPHeaders", {}
        ).get("x-amz-bucket-region", region)
        if bucket_region != region:
            return Check(
                "bucket",
                False,
                f"{bucket} is in {bucket_region}, and the job would run in {region}",
                hint=f"{fix} Or set AWS_REGION={bucket_region}.",
            )
        return Check("bucket", True, f"{bucket} ({bucket_region})")

    def _check_instance_type(self) -> Check:
        instance = self.instance_type
        known = _training_instance_types()
        valid = instance in known if known else bool(_INSTANCE_TYPE.match(instance))
        if not valid:
            return Check(
                "instance type",
                False,
                f"{instance!r} is not a SageMaker training instance type",
                hint="Set DEFECTS_INSTANCE_TYPE to one such as ml.g4dn.xlarge (GPU) or "
                "ml.m5.xlarge (CPU); local_cpu and local_gpu are for DEFECTS_BACKEND=local.",
            )
        try:
            image = self.image
        except ValueError as error:
            return Check(
                "instance type",
                False,
                f"no TensorFlow {modeltrainer.TENSORFLOW_VERSION} training image for "
                f"{instance}: {error}",
                hint="Choose a GPU (ml.g*, ml.p*) or CPU (ml.m*, ml.c*) instance type, or set "
                "DEFECTS_TRAINING_IMAGE.",
            )
        kind = "GPU" if instance.split(".")[1].startswith(("g", "p")) else "CPU"
        return Check("instance type", True, f"{instance} ({kind}), image {image}")

    # The request --------------------------------------------------------------------------

    def _trainer(self, job: TrainingJob, session: Any, role: str) -> Any:
        options = CloudOptions.from_extras(job.extras)
        layout = JobLayout.of(job)
        return modeltrainer.make_trainer(
            job,
            mode="SAGEMAKER_TRAINING_JOB",
            session=session,
            image=self.image,
            instance_type=self.instance_type,
            source_dir=str(job.source_dir),
            role=role,
            input_s3_key_prefix=layout.jobs_key,
            output_path=layout.output_path,
            volume_size_gb=options.volume_size,
            max_runtime_seconds=options.max_runtime,
            spot=options.spot,
            max_wait_seconds=options.max_wait,
            checkpoint_uri=layout.checkpoint_uri if options.spot else None,
            kms_key_id=options.kms_key,
            subnets=options.subnets,
            security_group_ids=options.security_groups,
            tags=options.tags,
        )

    def check_options(self, extras: Mapping[str, Any]) -> None:
        CloudOptions.from_extras(extras)

    def describe(self, job: TrainingJob) -> dict[str, Any]:
        """The exact ``CreateTrainingJob`` request, made by the SDK against moto in-process:
        no credentials needed, nothing uploaded or sent."""
        CloudOptions.from_extras(job.extras)
        # Without these the request cannot be built as it would be; the rest needs AWS.
        for item in (self._check_region(), self._check_instance_type()):
            if not item.ok:
                raise BackendError(
                    f"{self.name} backend: {item.name}: {item.detail}", hint=item.hint
                )
        role = self.settings.role_arn
        if not role:
            role = f"arn:aws:iam::{_ACCOUNT_PLACEHOLDER}:role/<DEFECTS_ROLE_ARN>"
            log.warning("DEFECTS_ROLE_ARN is not set: the request shows a placeholder role.")
        bucket = JobLayout.of(job).bucket
        # The account placeholder is no valid bucket name; the SDK gets a stand-in.
        stand_in = bucket if re.fullmatch(r"[a-z0-9.-]+", bucket) else _DRY_RUN_BUCKET
        if stand_in != bucket:
            job = replace(
                job,
                channels={
                    name: uri.replace(f"s3://{bucket}/", f"s3://{stand_in}/")
                    for name, uri in job.channels.items()
                },
                output_uri=job.output_uri.replace(f"s3://{bucket}/", f"s3://{stand_in}/"),
            )
        captured: dict[str, Any] = {}

        def capture(params: dict[str, Any], **_: Any) -> None:
            captured.update(copy.deepcopy(params))

        def hold(**_: Any) -> None:
            raise _Captured()

        with _offline_aws(self.settings.region) as boto_session, _quiet_sdk():
            boto_session.events.register(
                "before-parameter-build.sagemaker.CreateTrainingJob", capture
            )
            boto_session.events.register("before-call.sagemaker.CreateTrainingJob", hold)
            storage.ensure_bucket(boto_session.client("s3"), stand_in, self.settings.region)
            session = modeltrainer.make_session(self.settings.region, stand_in, boto_session)
            trainer = self._trainer(job, session, role)
            with contextlib.suppress(_Captured), self._sdk_context(stand_in):
                trainer.train(wait=False, logs=False)
        if not captured:
            raise BackendError("The SageMaker SDK did not build a CreateTrainingJob request.")
        text = json.dumps(_json_safe(captured))
        return dict(json.loads(text.replace(f"s3://{stand_in}/", f"s3://{bucket}/")))

    @contextlib.contextmanager
    def _sdk_context(self, bucket: str) -> Iterator[None]:
        with modeltrainer.exact_job_name(), modeltrainer.staging_bucket(bucket):
            yield

    # Running a job ------------------------------------------------------------------------

    def train(self, job: TrainingJob) -> TrainingResult:
        self.start(job)
        if CloudOptions.from_extras(job.extras).detach:
            log.info(
                "Job %s runs on its own now; `defects history %s` fetches its results "
                "once it has finished.",
                job.name,
                job.name,
            )
            return TrainingResult(
                job_name=job.name,
                model_uri=f"{job.output_uri}/{contract.MODEL_ARCHIVE}",
                output_uri=f"{job.output_uri}/{contract.OUTPUT_ARCHIVE}",
                details={"instance_type": self.instance_type, "image": self.image},
                detached=True,
            )
        return self.wait(job)

    def start(self, job: TrainingJob) -> None:
        """Upload the code and create the training job (the data is already staged)."""
        options = CloudOptions.from_extras(job.extras)
        layout = JobLayout.of(job)
        if not self.settings.role_arn:
            raise BackendError("DEFECTS_ROLE_ARN is not set.", hint=ROLE_HINT)
        boto_session = self.boto_session()
        session = modeltrainer.make_session(self.settings.region, layout.bucket, boto_session)
        with _quiet_sdk():
            trainer = self._trainer(job, session, str(self.settings.role_arn))
        log.info(
            "Starting SageMaker training job %s on %s%s (image %s).",
            job.name,
            self.instance_type,
            ", managed spot" if options.spot else "",
            self.image,
        )
        self._create(job, trainer, boto_session.client("sagemaker"), layout.bucket)
        region = self.settings.region
        log.info(
            "Job %s created: https://%s.console.aws.amazon.com/sagemaker/home?region=%s#/jobs/%s",
            job.name,
            region,
            region,
            job.name,
        )

    def wait(self, job: TrainingJob) -> TrainingResult:
        """Follow a started job to its end, with its status changes and its CloudWatch log on
        stderr and in ``job.log``. Ctrl-C asks whether to stop the job (it runs, and is
        billed, on its own) and then raises KeyboardInterrupt."""
        boto_session = self.boto_session()
        client = boto_session.client("sagemaker")
        with job.log_path.open("a") as job_log:
            follower = _LogFollower(boto_session.client("logs"), job.name, job_log)
            try:
                description = self._follow(job.name, client, follower, job_log)
            except KeyboardInterrupt:
                self._after_interrupt(job.name, client)
                raise
            except (ClientError, BotoCoreError) as error:
                raise BackendError(
                    f"Lost track of the SageMaker job {job.name}: {error}. It keeps running.",
                    hint=f"`defects history {job.name}` fetches its results once it has "
                    "finished; the SageMaker console shows its progress.",
                ) from error
        return self._result(job, description, CloudOptions.from_extras(job.extras))

    def _create(self, job: TrainingJob, trainer: Any, client: Any, bucket: str) -> None:
        try:
            with modeltrainer.ctrl_c_as_exception(), self._sdk_context(bucket), _quiet_sdk():
                trainer.train(wait=False, logs=False)
        except modeltrainer.Interrupted:
            # Ctrl-C while the SDK uploaded the code or created the job: did it start?
            with contextlib.suppress(BackendError):
                if self.status(job.name) is not None:
                    self._after_interrupt(job.name, client)
            raise KeyboardInterrupt from None
        except ClientError as error:
            raise self._refused(error) from error
        except (BotoCoreError, S3UploadFailedError) as error:
            raise BackendError(
                f"Could not start the SageMaker job {job.name}: {error}.",
                hint="Check the network and the credentials (`defects doctor`).",
            ) from error

    def _refused(self, error: ClientError) -> BackendError:
        code = _error_code(error)
        hints = {
            "ResourceLimitExceeded": "Ask for a quota increase in Service Quotas (SageMaker, "
            f"'{self.instance_type} for training job usage', or 'for spot training job usage' "
            "with --spot), or choose another type with DEFECTS_INSTANCE_TYPE.",
            "AccessDeniedException": "These credentials need sagemaker:CreateTrainingJob and "
            "iam:PassRole on DEFECTS_ROLE_ARN.",
            "AccessDenied": "These credentials need write access to the bucket.",
        }
        return BackendError(
            f"SageMaker refused the training job: {_error_text(error)}.",
            hint=hints.get(code, "Check the settings with `defects config` and `defects doctor`."),
        )

    def _follow(self, job_name: str, client: Any, follower: _LogFollower, job_log: IO[str]) -> Any:
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
            time.sleep(self.poll_seconds)

    def _after_interrupt(self, job_name: str, client: Any) -> None:
        """Ctrl-C: the job runs (and is billed) on its own until stopped; ask, or stop it."""
        stop = True
        if sys.stdin.isatty():
            try:
                stop = click.confirm(
                    f"Stop the SageMaker job {job_name} too? It is billed until it stops.",
                    default=True,
                    err=True,
                )
            except click.Abort:
                stop = True
        if not stop:
            log.warning(
                "Job %s keeps running; `defects history %s` fetches its results once it "
                "has finished.",
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

    def _result(
        self, job: TrainingJob, description: Mapping[str, Any], options: CloudOptions
    ) -> TrainingResult:
        status = description["TrainingJobStatus"]
        if status == "Failed":
            raise TrainingFailed(
                description.get("FailureReason") or "SageMaker reports the job as Failed.",
                hint=f"The job's log is in {job.log_path} and in CloudWatch ({LOG_GROUP}, "
                f"streams {job.name}/...).",
            )
        if status == "Stopped":
            raise TrainingFailed(
                f"The SageMaker job {job.name} was stopped "
                f"({description.get('SecondaryStatus', 'Stopped')}) before it finished.",
                hint=f"Raise --max-runtime (now {options.max_runtime} s)"
                + (" or --max-wait" if options.spot else "")
                + " if it ran out of time.",
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
        model_uri = description.get("ModelArtifacts", {}).get("S3ModelArtifacts") or (
            f"{job.output_uri}/{contract.MODEL_ARCHIVE}"
        )
        return TrainingResult(
            job_name=job.name,
            model_uri=str(model_uri),
            output_uri=f"{job.output_uri}/{contract.OUTPUT_ARCHIVE}",
            details=details,
        )

    def status(self, job_name: str) -> JobStatus | None:
        client = self.boto_session().client("sagemaker")
        try:
            description = client.describe_training_job(TrainingJobName=job_name)
        except ClientError as error:
            if _error_code(error) in {"ValidationException", "ResourceNotFound"}:
                return None
            raise BackendError(
                f"Could not look up the SageMaker job {job_name}: {_error_text(error)}.",
                hint="These credentials need sagemaker:DescribeTrainingJob.",
            ) from error
        except BotoCoreError as error:
            raise BackendError(
                f"Could not look up the SageMaker job {job_name}: {error}.",
                hint=CREDENTIALS_HINT,
            ) from error
        status = description["TrainingJobStatus"]
        state = _STATES.get(status, "running")
        if state == "failed":
            detail = description.get("FailureReason") or "SageMaker reports the job as Failed."
        else:
            detail = f"{status} ({description.get('SecondaryStatus', status)})"
        return JobStatus(job_name, state, detail)


__all__ = ["CloudOptions", "JobLayout", "SageMakerBackend"]
