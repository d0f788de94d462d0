"""The preflight of the ``sagemaker`` backend: what must hold before anything is uploaded.

Credentials, role, region, no emulator endpoint, then (asking AWS) identity, the role's
account, the bucket; and the instance type. Each failure carries its fix.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from urllib.parse import urlparse

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from defects.backends import modeltrainer
from defects.backends.base import Check
from defects.backends.cloud.aws import (
    CREDENTIALS_HINT,
    Account,
    error_code,
    error_text,
    failure_hint,
)
from defects.errors import BackendError

ROLE_HINT = (
    "Set DEFECTS_ROLE_ARN to an IAM role that SageMaker may assume (trusting "
    "sagemaker.amazonaws.com) and that may read and write the bucket, e.g. one with the "
    "AmazonSageMakerFullAccess policy."
)
_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z]+[0-9][a-z0-9-]*\.[a-z0-9-]+$")


def is_loopback(url: str) -> bool:
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


def run_checks(aws: Account) -> list[Check]:
    """Every check, in the order to fix them; AWS is asked only once the local settings
    are right, so nothing goes to an emulator."""
    sdk = modeltrainer.sdk_check()
    if not sdk.ok:
        return [sdk]
    found = [
        check_credentials(aws),
        check_role(aws),
        check_region(aws),
        check_endpoint(aws),
    ]
    # Only ask AWS once the local settings are right: nothing goes to an emulator.
    if all(item.ok for item in found):
        identity = check_identity(aws)
        found.append(identity)
        if identity.ok:
            found += [check_role_account(aws), check_bucket(aws)]
    found.append(check_instance_type(aws))
    return found


def check_credentials(aws: Account) -> Check:
    try:
        credentials = aws.boto_session().get_credentials()
    except BotoCoreError as error:
        return Check("credentials", False, str(error), hint=failure_hint(error))
    if credentials is None:
        return Check("credentials", False, "no AWS credentials found", hint=CREDENTIALS_HINT)
    return Check("credentials", True, f"found ({credentials.method})")


def check_role(aws: Account) -> Check:
    role = aws.settings.role_arn
    if not role:
        return Check("execution role", False, "DEFECTS_ROLE_ARN is not set", hint=ROLE_HINT)
    return Check("execution role", True, role)


def check_region(aws: Account) -> Check:
    region = aws.settings.region
    source = aws.settings.sources.get("region", "default")
    if region not in _sagemaker_regions():
        return Check(
            "region",
            False,
            f"{region!r} ({source}) is not a region where SageMaker runs",
            hint="Set AWS_REGION to a SageMaker region, e.g. us-east-1 or eu-west-1.",
        )
    return Check("region", True, f"{region} ({source})")


def check_endpoint(aws: Account) -> Check:
    given = [(name, os.environ.get(name, "")) for name in _ENDPOINT_VARIABLES]
    if aws.settings.s3_endpoint:
        given.insert(0, ("AWS_ENDPOINT_URL_S3", aws.settings.s3_endpoint))
    for variable, url in given:
        if url and is_loopback(url):
            return Check(
                "S3 endpoint",
                False,
                f"{variable}={url} is a local emulator, and SageMaker reads real S3",
                hint=f"Unset {' and '.join(_ENDPOINT_VARIABLES)}: they point at the "
                "embedded S3 server, which only the process and local backends use.",
            )
    custom = next((f"{name}={url}" for name, url in given if url), None)
    return Check("S3 endpoint", True, custom or "AWS")


def check_identity(aws: Account) -> Check:
    try:
        account = aws.account()
    except BackendError as error:
        return Check("identity", False, error.message, hint=error.hint)
    arn = aws.identity["Arn"] if aws.identity else "?"
    return Check("identity", True, f"{arn} (account {account})")


def check_role_account(aws: Account) -> Check:
    role = str(aws.settings.role_arn)
    account = aws.account()
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


def check_bucket(aws: Account) -> Check:
    region = aws.settings.region
    chosen = aws.settings.bucket is None
    bucket = aws.settings.bucket or aws.default_bucket()
    arguments = {"Bucket": bucket}
    if chosen:
        # A bucket of that predictable name in another account is not ours to use.
        arguments["ExpectedBucketOwner"] = aws.account()
    fix = "Set DEFECTS_BUCKET to a bucket of your account in this region."
    try:
        response = aws.boto_session().client("s3").head_bucket(**arguments)
    except ClientError as error:
        code = error_code(error)
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
        return Check("bucket", False, f"{bucket}: {error_text(error)}", hint=fix)
    except BotoCoreError as error:
        return Check("bucket", False, f"could not reach S3: {error}", hint=failure_hint(error, fix))
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


def check_instance_type(aws: Account) -> Check:
    instance = aws.instance_type
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
        image = aws.image
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
