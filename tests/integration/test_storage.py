from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from defects.errors import StorageError
from defects.storage import s3 as storage


@pytest.fixture
def s3(s3_endpoint: str) -> object:
    return boto3.client("s3", region_name="us-east-1", endpoint_url=s3_endpoint)


def _items(root: Path, count: int) -> list[storage.UploadItem]:
    items = []
    for i in range(count):
        path = root / f"f{i}.bin"
        path.write_bytes(bytes([i]) * (100 + i))
        items.append(storage.UploadItem(path, f"data/f{i}.bin", storage.md5_of(path)))
    return items


def test_created_bucket_blocks_public_access_and_encrypts(s3: object) -> None:
    assert storage.ensure_bucket(s3, "fresh-bucket", "us-east-1") is True
    block = s3.get_public_access_block(Bucket="fresh-bucket")  # type: ignore[attr-defined]
    assert all(block["PublicAccessBlockConfiguration"].values())
    encryption = s3.get_bucket_encryption(Bucket="fresh-bucket")  # type: ignore[attr-defined]
    rule = encryption["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_existing_bucket_is_left_alone(s3: object) -> None:
    s3.create_bucket(Bucket="mine")  # type: ignore[attr-defined]
    assert storage.ensure_bucket(s3, "mine", "us-east-1") is False


def test_upload_then_reupload_skips_unchanged_objects(s3: object, tmp_path: Path) -> None:
    storage.ensure_bucket(s3, "bkt", "us-east-1")
    items = _items(tmp_path, 20)
    first = storage.upload(s3, "bkt", items, "data/")
    assert (first.transferred, first.skipped) == (20, 0)
    second = storage.upload(s3, "bkt", items, "data/")
    assert (second.transferred, second.skipped) == (0, 20)


def test_changed_file_is_uploaded_again(s3: object, tmp_path: Path) -> None:
    storage.ensure_bucket(s3, "bkt", "us-east-1")
    items = _items(tmp_path, 3)
    storage.upload(s3, "bkt", items, "data/")
    items[1].path.write_bytes(b"changed")
    changed = storage.UploadItem(items[1].path, items[1].key, storage.md5_of(items[1].path))
    report = storage.upload(s3, "bkt", [items[0], changed, items[2]], "data/")
    assert (report.transferred, report.skipped) == (1, 2)
    body = s3.get_object(Bucket="bkt", Key="data/f1.bin")["Body"].read()  # type: ignore[attr-defined]
    assert body == b"changed"


class _KmsEtags:
    """An S3 client as it looks under SSE-KMS: listed ETags are not the MD5 of the content."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)

    def get_paginator(self, operation: str) -> Any:
        pages = self._s3.get_paginator(operation)

        class Paginator:
            def paginate(self, **arguments: Any) -> Iterator[dict[str, Any]]:
                for page in pages.paginate(**arguments):
                    for item in page.get("Contents", []):
                        item["ETag"] = '"' + "f" * 32 + '"'
                    yield page

        return Paginator()


def _kms_bucket(s3: Any, name: str) -> None:
    s3.create_bucket(Bucket=name)
    key = boto3.client(
        "kms", region_name="us-east-1", endpoint_url=s3.meta.endpoint_url
    ).create_key()["KeyMetadata"]["KeyId"]
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key,
                    }
                }
            ]
        },
    )


def test_a_kms_bucket_verifies_and_skips_by_the_recorded_md5(s3: Any, tmp_path: Path) -> None:
    _kms_bucket(s3, "kms-bucket")
    kms = _KmsEtags(s3)
    items = _items(tmp_path, 4)
    first = storage.upload(kms, "kms-bucket", items, "data/")
    assert (first.transferred, first.skipped) == (4, 0)
    head = s3.head_object(Bucket="kms-bucket", Key=items[0].key)
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["Metadata"]["md5"] == items[0].md5
    items[2].path.write_bytes(b"changed")
    changed = storage.UploadItem(items[2].path, items[2].key, storage.md5_of(items[2].path))
    again = storage.upload(kms, "kms-bucket", [items[0], items[1], changed, items[3]], "data/")
    assert (again.transferred, again.skipped) == (1, 3)


def test_without_encryption_a_wrong_etag_is_still_a_failed_upload(s3: Any, tmp_path: Path) -> None:
    storage.ensure_bucket(s3, "plain", "us-east-1")
    with pytest.raises(StorageError, match="do not match the local files"):
        storage.upload(_KmsEtags(s3), "plain", _items(tmp_path, 2), "data/")


def test_download_restores_the_tree(s3: object, tmp_path: Path) -> None:
    storage.ensure_bucket(s3, "bkt", "us-east-1")
    (tmp_path / "up").mkdir()
    items = _items(tmp_path / "up", 4)
    storage.upload(s3, "bkt", items, "data/")
    count = storage.download(s3, storage.S3Uri("bkt", "data"), tmp_path / "down")
    assert count == 4
    for item in items:
        assert (tmp_path / "down" / item.path.name).read_bytes() == item.path.read_bytes()


def test_missing_bucket_is_a_storage_error(s3: object, tmp_path: Path) -> None:
    with pytest.raises(StorageError) as caught:
        storage.download(s3, storage.S3Uri("no-such-bucket", "x"), tmp_path)
    assert "NoSuchBucket" in caught.value.message


def test_unreachable_endpoint_is_a_storage_error(tmp_path: Path) -> None:
    session = boto3.Session(
        region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    s3 = storage.client(session, "http://127.0.0.1:9")
    with pytest.raises(StorageError) as caught:
        storage.list_etags(s3, storage.S3Uri("b", "x"))
    assert "AWS_ENDPOINT_URL_S3" in caught.value.hint


def test_s3_uri_round_trip() -> None:
    uri = storage.S3Uri.parse("s3://bucket/a/b")
    assert (uri.bucket, uri.key) == ("bucket", "a/b")
    assert str(uri.join("c", "/d/")) == "s3://bucket/a/b/c/d"
    with pytest.raises(StorageError):
        storage.S3Uri.parse("https://bucket/a")
