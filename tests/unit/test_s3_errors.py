"""Every S3 failure is a StorageError with a message and a fix, never a botocore traceback."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from s3transfer.exceptions import RetriesExceededError, S3UploadFailedError

from defects.errors import StorageError
from defects.storage.s3 import s3_errors

URL = "http://127.0.0.1:9/"


def _client_error(code: str, status: int) -> ClientError:
    response = {"Error": {"Code": code, "Message": "no"}, "ResponseMetadata": {}}
    response["ResponseMetadata"]["HTTPStatusCode"] = status
    return ClientError(response, "PutObject")  # type: ignore[arg-type]


FAILURES: dict[str, tuple[Exception, str, str]] = {
    "refused": (
        EndpointConnectionError(endpoint_url=URL),
        "Could not reach S3 while trying to stage it",
        "AWS_ENDPOINT_URL_S3",
    ),
    "connect timeout": (
        ConnectTimeoutError(endpoint_url=URL),
        "Could not reach S3 while trying to stage it",
        "Check the network",
    ),
    "read timeout": (
        ReadTimeoutError(endpoint_url=URL),
        "Could not reach S3 while trying to stage it",
        "Run the command again",
    ),
    "no credentials": (
        NoCredentialsError(),
        "No AWS credentials to stage it.",
        "AWS_ACCESS_KEY_ID",
    ),
    "slow down": (
        _client_error("SlowDown", 503),
        "S3 refused to stage it: An error occurred (SlowDown)",
        "S3 kept failing after several retries",
    ),
    "internal error": (
        _client_error("InternalError", 500),
        "S3 refused to stage it: An error occurred (InternalError)",
        "Run the command again",
    ),
    "bad key": (
        _client_error("InvalidAccessKeyId", 403),
        "S3 refused to stage it",
        "Check the AWS credentials",
    ),
    "denied": (
        _client_error("AccessDenied", 403),
        "S3 refused to stage it",
        "S3 permissions",
    ),
    "connection closed": (
        ConnectionClosedError(endpoint_url=URL),
        "S3 failed to stage it",
        "Run the command again",
    ),
    "cut body": (
        ResponseStreamingError(error="IncompleteRead(5 bytes read, 5 more expected)"),
        "S3 failed to stage it",
        "Run the command again",
    ),
    "download retries spent": (
        RetriesExceededError(last_exception=ValueError("cut")),
        "S3 failed to stage it",
        "Run the command again",
    ),
    "upload failed": (
        S3UploadFailedError("Failed to upload"),
        "S3 failed to stage it",
        "Run the command again",
    ),
}


@pytest.mark.parametrize("failure", list(FAILURES), ids=list(FAILURES))
def test_an_s3_failure_is_a_storage_error_with_a_fix(failure: str) -> None:
    raised, message, hint = FAILURES[failure]
    with pytest.raises(StorageError) as caught, s3_errors("stage it"):
        raise raised
    assert caught.value.message.startswith(message)
    assert hint in caught.value.hint
    assert "\n" not in caught.value.message + caught.value.hint
    assert caught.value.__cause__ is raised


def test_errors_of_the_tool_itself_pass_unchanged() -> None:
    own = StorageError("already explained", hint="the fix")
    with pytest.raises(StorageError) as caught, s3_errors("stage it"):
        raise own
    assert caught.value is own
