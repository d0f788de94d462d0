"""The preflight of the ``sagemaker`` backend: what must hold before anything is uploaded.

Credentials, role, region, no emulator endpoint, then (asking AWS) identity, the role's
account, the bucket; and the instance type. Each failure carries its fix.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import botocore.exceptions
import botocore.session
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError

from defects.backends import modeltrainer
from defects.backends.base import Check
from defects.errors import BackendError

if TYPE_CHECKING:
    from defects.backends.cloud.backend import SageMakerBackend

ROLE_HINT = (
    "Set DEFECTS_ROLE_ARN to an IAM role that SageMaker may assume (trusting "
    "sagemaker.amazonaws.com) and that may read and write the bucket, e.g. one with the "
    "AmazonSageMakerFullAccess policy."
)
CREDENTIALS_HINT = (
    "Configure AWS credentials: `aws configure` or `aws sso login` (and AWS_PROFILE), or set "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
)
NETWORK_HINT = (
    "AWS did not answer: check the network connection, the proxy (HTTPS_PROXY, NO_PROXY) or "
    "firewall in between, and that AWS_REGION is a region whose endpoints this machine can "
    "reach; then try again."
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


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` says AWS was not reached (no network, a proxy, a timeout), as
    opposed to a problem with the credentials or the request."""
    return isinstance(error, (botocore.exceptions.ConnectionError, HTTPClientError))


def failure_hint(error: BaseException, otherwise: str = CREDENTIALS_HINT) -> str:
    """The fix for ``error``: the network's when AWS was not reached, else ``otherwise``."""
    return NETWORK_HINT if unreachable(error) else otherwise


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def error_text(error: ClientError) -> str:
    details = error.response.get("Error", {})
    return f"{details.get('Code', '')}: {details.get('Message', '')}".strip(": ")


def run_checks(backend: SageMakerBackend) -> list[Check]:
    """Every check, in the order to fix them; AWS is asked only once the local settings
    are right, so nothing goes to an emulator."""
    sdk = modeltrainer.sdk_check()
    if not sdk.ok:
        return [sdk]
    found = [
        check_credentials(backend),
        check_role(backend),
        check_region(backend),
        check_endpoint(backend),
    ]
    # Only ask AWS once the local settings are right: nothing goes to an emulator.
    if all(item.ok for item in found):
        identity = check_identity(backend)
        found.append(identity)
        if identity.ok:
            found += [check_role_account(backend), check_bucket(backend)]
    found.append(check_instance_type(backend))
    return found


def check_credentials(backend: SageMakerBackend) -> Check:
    try:
        credentials = backend.boto_session().get_credentials()
    except BotoCoreError as error:
        return Check("credentials", False, str(error), hint=failure_hint(error))
    if credentials is None:
        return Check("credentials", False, "no AWS credentials found", hint=CREDENTIALS_HINT)
    return Check("credentials", True, f"found ({credentials.method})")


def check_role(backend: SageMakerBackend) -> Check:
    role = backend.settings.role_arn
    if not role:
        return Check("execution role", False, "DEFECTS_ROLE_ARN is not set", hint=ROLE_HINT)
    return Check("execution role", True, role)


def check_region(backend: SageMakerBackend) -> Check:
    region = backend.settings.region
    source = backend.settings.sources.get("region", "default")
    if region not in _sagemaker_regions():
        return Check(
            "region",
            False,
            f"{region!r} ({source}) is not a region where SageMaker runs",
            hint="Set AWS_REGION to a SageMaker region, e.g. us-east-1 or eu-west-1.",
        )
    return Check("region", True, f"{region} ({source})")


def check_endpoint(backend: SageMakerBackend) -> Check:
    given = [(name, os.environ.get(name, "")) for name in _ENDPOINT_VARIABLES]
    if backend.settings.s3_endpoint:
        given.insert(0, ("AWS_ENDPOINT_URL_S3", backend.settings.s3_endpoint))
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


def check_identity(backend: SageMakerBackend) -> Check:
    try:
        account = backend.account()
    except BackendError as error:
        return Check("identity", False, error.message, hint=error.hint)
    arn = backend.identity["Arn"] if backend.identity else "?"
    return Check("identity", True, f"{arn} (account {account})")


def check_role_account(backend: SageMakerBackend) -> Check:
    role = str(backend.settings.role_arn)
    account = backend.account()
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


def check_bucket(backend: SageMakerBackend) -> Check:
    region = backend.settings.region
    chosen = backend.settings.bucket is None
    bucket = backend.settings.bucket or backend.default_bucket()
    arguments = {"Bucket": bucket}
    if chosen:
        # A bucket of that predictable name in another account is not ours to use.
        arguments["ExpectedBucketOwner"] = backend.account()
    fix = "Set DEFECTS_BUCKET to a bucket of your account in this region."
    try:
        response = backend.boto_session().client("s3").head_bucket(**arguments)
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


def check_instance_type(backend: SageMakerBackend) -> Check:
    instance = backend.instance_type
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
        image = backend.image
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
