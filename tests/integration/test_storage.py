from pathlib import Path

import boto3
import pytest

from defects import storage
from defects.errors import StorageError


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
    s3 = storage.client("us-east-1", "http://127.0.0.1:9")
    with pytest.raises(StorageError) as caught:
        storage.list_etags(s3, storage.S3Uri("b", "x"))
    assert "AWS_ENDPOINT_URL_S3" in caught.value.hint


def test_s3_uri_round_trip() -> None:
    uri = storage.S3Uri.parse("s3://bucket/a/b")
    assert (uri.bucket, uri.key) == ("bucket", "a/b")
    assert str(uri.join("c", "/d/")) == "s3://bucket/a/b/c/d"
    with pytest.raises(StorageError):
        storage.S3Uri.parse("https://bucket/a")
