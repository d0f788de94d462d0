"""The AWS side of the ``sagemaker`` backend, which every module of this package shares: the
:class:`Account` (settings, one boto3 session, the identity asked once, the bucket, the image
and the instance type) and how AWS's errors become the tool's (:func:`aws_errors`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import botocore.exceptions
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError

from defects.backends import modeltrainer
from defects.errors import BackendError
from defects.settings import Settings
from defects.storage import Layout

DEFAULT_INSTANCE_TYPE = "ml.g4dn.xlarge"
# What a request names when there is no account to ask.
ACCOUNT_PLACEHOLDER = "<account-id>"
CREDENTIALS_HINT = (
    "Configure AWS credentials: `aws configure` or `aws sso login` (and AWS_PROFILE), or set "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY."
)
NETWORK_HINT = (
    "AWS did not answer: check the network connection, the proxy (HTTPS_PROXY, NO_PROXY) or "
    "firewall in between, and that AWS_REGION is a region whose endpoints this machine can "
    "reach; then try again."
)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def error_text(error: ClientError) -> str:
    details = error.response.get("Error", {})
    return f"{details.get('Code', '')}: {details.get('Message', '')}".strip(": ")


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` says AWS was not reached (no network, a proxy, a timeout), as
    opposed to a problem with the credentials or the request."""
    return isinstance(error, (botocore.exceptions.ConnectionError, HTTPClientError))


def failure_hint(error: BaseException, otherwise: str = CREDENTIALS_HINT) -> str:
    """The fix for ``error``: the network's when AWS was not reached, else ``otherwise``."""
    return NETWORK_HINT if unreachable(error) else otherwise


@contextmanager
def aws_errors(
    action: str, permission: str | None = None, hint: str | None = None
) -> Iterator[None]:
    """AWS's errors inside the block as a :class:`BackendError` that says what could not be
    done (``action``: "stop the SageMaker job x"): a refusal names the ``permission`` the
    credentials need (or ``hint``), a failure to reach AWS the network's fix."""
    try:
        yield
    except ClientError as error:
        fix = hint or (f"These credentials need {permission}." if permission else "")
        raise BackendError(f"Could not {action}: {error_text(error)}.", hint=fix) from error
    except BotoCoreError as error:
        raise BackendError(f"Could not {action}: {error}.", hint=failure_hint(error)) from error


class Account:
    """The AWS account a SageMaker job runs in, as the settings and the default credential
    chain give it; AWS is asked (once) only when the identity is needed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._session: Any = None
        self.identity: dict[str, str] | None = None

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

    def account(self) -> str:
        """The AWS account of these credentials (asked once)."""
        if self.identity is None:
            try:
                identity = self.boto_session().client("sts").get_caller_identity()
            except ClientError as error:
                raise BackendError(
                    f"AWS refused these credentials: {error_text(error)}.",
                    hint="Refresh them (`aws sso login`, or new access keys) and try again.",
                ) from error
            except BotoCoreError as error:
                raise BackendError(
                    f"Could not ask AWS who these credentials belong to: {error}.",
                    hint=failure_hint(error),
                ) from error
            self.identity = {"Account": identity["Account"], "Arn": identity["Arn"]}
        return self.identity["Account"]

    def default_bucket(self, offline: bool = False) -> str:
        account = ACCOUNT_PLACEHOLDER if offline else self.account()
        return f"sagemaker-{self.settings.region}-{account}"

    def layout(self, offline: bool = False) -> Layout:
        bucket = self.settings.bucket or self.default_bucket(offline)
        return Layout(bucket, self.settings.prefix)
