"""S3 operations on the host: buckets, listings, and parallel, checksummed transfers.

All S3 traffic of a job happens here, never in the entry point.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from s3transfer.exceptions import (
    RetriesExceededError,
    S3DownloadFailedError,
    S3UploadFailedError,
)
from s3transfer.manager import TransferManager
from s3transfer.subscribers import BaseSubscriber

from defects.errors import DISK_FULL_HEADLINE, DiskError, StorageError

# Single-part uploads up to this size, so that an object's ETag is the MD5 of its content.
_SINGLE_PART_LIMIT = 512 * 1024 * 1024
_CONCURRENCY = 16


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith("s3://"):
            raise StorageError(f"{uri!r} is not an s3:// URI.")
        bucket, _, key = uri[len("s3://") :].partition("/")
        return cls(bucket, key)

    def join(self, *parts: str) -> S3Uri:
        key = "/".join(p.strip("/") for p in (self.key, *parts) if p.strip("/"))
        return S3Uri(self.bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def client(session: Any, endpoint: str | None = None) -> Any:
    """An S3 client of the boto3 ``session``, at ``endpoint`` (None: AWS itself)."""
    config = Config(
        max_pool_connections=_CONCURRENCY * 2,
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=10,
        read_timeout=120,
        # No CRC32 pass over every upload: each staged object's MD5 is compared with its
        # ETag after the upload instead (see upload()).
        request_checksum_calculation="when_required",
    )
    return session.client("s3", endpoint_url=endpoint, config=config)


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
}
# What s3transfer raises once its own retries are spent.
_TRANSFER_ERRORS = (RetriesExceededError, S3UploadFailedError, S3DownloadFailedError)
_RETRY_HINT = "Run the command again: finished transfers are skipped."


@contextmanager
def s3_errors(action: str) -> Iterator[None]:
    """Turn every S3 failure in the block (refusals, missing credentials, connection
    refused, timeouts, transfers that failed after their retries) into a
    :class:`StorageError` whose message says what failed and whose hint says the fix."""
    try:
        yield
    except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError) as error:
        raise StorageError(
            f"Could not reach S3 while trying to {action}: {error}.",
            hint="Check the network, or AWS_ENDPOINT_URL_S3 when it is set: unset it to use "
            "an embedded server, or start the one it names (`defects s3 serve`). " + _RETRY_HINT,
        ) from error
    except ClientError as error:
        code = _error_code(error)
        if code in _CREDENTIAL_CODES:
            hint = "Check the AWS credentials (`aws sts get-caller-identity`) and the region."
        elif code in {"AccessDenied", "403"}:
            hint = "Check the credentials' S3 permissions for this bucket."
        elif code in {"NoSuchBucket", "404"}:
            hint = "Create the bucket or set DEFECTS_BUCKET to an existing one."
        elif code in {"SlowDown", "InternalError", "ServiceUnavailable", "500", "503"}:
            hint = f"S3 kept failing after several retries. {_RETRY_HINT}"
        else:
            hint = ""
        raise StorageError(f"S3 refused to {action}: {error}.", hint=hint) from error
    except NoCredentialsError as error:
        raise StorageError(
            f"No AWS credentials to {action}.",
            hint="Configure credentials (`aws configure`, AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY); for an S3 emulator any non-empty values will do.",
        ) from error
    except (BotoCoreError, *_TRANSFER_ERRORS) as error:
        raise StorageError(
            f"S3 failed to {action}: {error}.",
            hint=f"Check the network and AWS_ENDPOINT_URL_S3. {_RETRY_HINT}",
        ) from error


def ensure_bucket(s3: Any, bucket: str, region: str) -> bool:
    """Create the bucket if missing (private, encrypted). Returns True when it was created."""
    with s3_errors(f"look up the bucket {bucket}"):
        try:
            s3.head_bucket(Bucket=bucket)
            return False
        except ClientError as error:
            if _error_code(error) in {"403", "AccessDenied"}:
                raise StorageError(
                    f"The bucket {bucket!r} exists but these credentials may not use it.",
                    hint="Set DEFECTS_BUCKET to a bucket of your own account.",
                ) from error
            if _error_code(error) not in {"404", "NoSuchBucket", "NotFound"}:
                raise
    with s3_errors(f"create the bucket {bucket}"):
        arguments: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**arguments)
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
    return True


def total_size(s3: Any, location: S3Uri) -> int:
    """The bytes of every object below the folder ``location``."""
    prefix = location.key.rstrip("/") + "/" if location.key else ""
    total = 0
    with s3_errors(f"list {location}"):
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=location.bucket, Prefix=prefix
        ):
            total += sum(int(item["Size"]) for item in page.get("Contents", []))
    return total


def _size(count: int) -> str:
    return f"{count / 1e9:.2f} GB" if count >= 10**9 else f"{count / 1e6:.1f} MB"


def require_space(s3: Any, locations: list[S3Uri], folder: Path, margin: float = 1.05) -> None:
    """Refuse, before any download, data that would not fit the free space of ``folder``,
    naming both sizes (with a margin for what else is written beside it)."""
    if not locations:
        return
    needed = sum(total_size(s3, location) for location in locations)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed * margin > free:
        raise DiskError(
            f"The job's data is {_size(needed)}, and the disk of {folder} has "
            f"{_size(free)} free: it would not fit.",
            hint="Free some space (`defects gc`, `df -h`), or work in a folder on a larger "
            "disk; on SageMaker, --input-mode fastfile streams the data instead of "
            "downloading it.",
            headline=DISK_FULL_HEADLINE,
        )


def list_etags(s3: Any, location: S3Uri, folder: bool = True) -> dict[str, str]:
    """Every object below ``location`` (a folder, or a plain key prefix) as key -> ETag."""
    etags: dict[str, str] = {}
    prefix = location.key
    if folder and prefix:
        prefix = prefix.rstrip("/") + "/"
    with s3_errors(f"list {location}"):
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=location.bucket, Prefix=prefix
        ):
            for item in page.get("Contents", []):
                etags[item["Key"]] = item["ETag"].strip('"')
    return etags


# S3 makes an object's ETag the MD5 of its content only without encryption or with SSE-S3;
# under SSE-KMS (a bucket default in many accounts) or SSE-C it is not. Every upload also
# records its MD5 as metadata, which is read when the ETag cannot be the MD5.
_MD5_METADATA = "md5"


def _holds(s3: Any, bucket: str, key: str, etag: str | None, md5: str) -> bool:
    """Whether the object ``key`` (listed with ``etag``, or None when missing) has ``md5``."""
    if etag is None:
        return False
    if etag == md5:
        return True
    head = s3.head_object(Bucket=bucket, Key=key)
    encrypted = str(head.get("ServerSideEncryption", "")).startswith("aws:kms") or bool(
        head.get("SSECustomerAlgorithm")
    )
    return encrypted and head.get("Metadata", {}).get(_MD5_METADATA) == md5


class _Advance(BaseSubscriber):
    def __init__(self, advance: Callable[[int], None]) -> None:
        self._advance = advance

    def on_done(self, future: Any, **kwargs: Any) -> None:
        self._advance(1)


def _transfer_manager(s3: Any) -> TransferManager:
    config = TransferConfig(
        max_concurrency=_CONCURRENCY,
        multipart_threshold=_SINGLE_PART_LIMIT,
        multipart_chunksize=64 * 1024 * 1024,
        use_threads=True,
    )
    return TransferManager(s3, config)


@dataclass(frozen=True)
class UploadItem:
    path: Path
    key: str
    md5: str


@dataclass(frozen=True)
class TransferReport:
    transferred: int
    skipped: int
    bytes: int


def upload(
    s3: Any,
    bucket: str,
    items: Iterable[UploadItem],
    prefix: str,
    advance: Callable[[int], None] = lambda n: None,
) -> TransferReport:
    """Upload in parallel, skipping objects whose content is already there; verify MD5s.

    ``items`` may be produced while the uploads run (each is sent as soon as it arrives).
    Under SSE-KMS the check after the upload compares the MD5 recorded with each object: it
    proves that the upload finished, and TLS protects the bytes on their way.
    """
    existing = list_etags(s3, S3Uri(bucket, prefix), folder=False)
    todo: list[UploadItem] = []
    skipped = 0
    with s3_errors(f"upload to s3://{bucket}/{prefix}"), _transfer_manager(s3) as manager:
        futures = []
        for item in items:
            if _holds(s3, bucket, item.key, existing.get(item.key), item.md5):
                skipped += 1
                advance(1)
                continue
            todo.append(item)
            futures.append(
                manager.upload(
                    str(item.path),
                    bucket,
                    item.key,
                    extra_args={"Metadata": {_MD5_METADATA: item.md5}},
                    subscribers=[_Advance(advance)],
                )
            )
        for future in futures:
            future.result()
    if todo:
        uploaded = list_etags(s3, S3Uri(bucket, prefix), folder=False)
        with s3_errors(f"check the uploads to s3://{bucket}/{prefix}"):
            corrupt = [
                item.key
                for item in todo
                if not _holds(s3, bucket, item.key, uploaded.get(item.key), item.md5)
            ]
        if corrupt:
            raise StorageError(
                f"{len(corrupt)} object(s) in s3://{bucket} do not match the local files after "
                f"upload, e.g. {corrupt[0]}.",
                hint="Run the command again; unchanged objects are skipped.",
            )
    return TransferReport(
        transferred=len(todo),
        skipped=skipped,
        bytes=sum(item.path.stat().st_size for item in todo),
    )


def upload_file(s3: Any, path: Path, location: S3Uri) -> None:
    upload(s3, location.bucket, [UploadItem(path, location.key, md5_of(path))], location.key)


def download(s3: Any, location: S3Uri, destination: Path) -> int:
    """Download every object below ``location`` into ``destination``, in parallel."""
    keys = list_etags(s3, location)
    if not keys:
        raise StorageError(f"Nothing found at {location}.")
    prefix = location.key.rstrip("/") + "/"
    with s3_errors(f"download {location}"), _transfer_manager(s3) as manager:
        futures = []
        for key in keys:
            relative = key[len(prefix) :]
            if not relative or relative.endswith("/"):
                continue
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            futures.append(manager.download(location.bucket, key, str(target)))
        for future in futures:
            future.result()
    return len(futures)


def download_file(s3: Any, location: S3Uri, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    with s3_errors(f"download {location}"):
        s3.download_file(location.bucket, location.key, str(destination))


def exists(s3: Any, location: S3Uri) -> bool:
    with s3_errors(f"look up {location}"):
        try:
            s3.head_object(Bucket=location.bucket, Key=location.key)
            return True
        except ClientError as error:
            if _error_code(error) in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
