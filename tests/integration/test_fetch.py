"""Fetching a job's artifacts from S3 through the one safe extractor."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import boto3
import pytest

from defects.errors import UnsafeArchive
from defects.pipeline.launch import fetch
from defects.storage import Layout, open_embedded

JOB = "crafted"


def _archive(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


def _put(endpoint: str, model: bytes, output: bytes) -> None:
    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket="defects")
    s3.put_object(Bucket="defects", Key=f"defects/jobs/{JOB}/output/model.tar.gz", Body=model)
    s3.put_object(Bucket="defects", Key=f"defects/jobs/{JOB}/output/output.tar.gz", Body=output)


def _fetch(endpoint: str, runs: Path) -> Path:
    with open_embedded(Layout("defects", "defects"), "us-east-1", endpoint) as store:
        return fetch(JOB, store, runs)


GOOD_MODEL = _archive({"model.keras": b"k", "class_names.json": b'["a", "b"]'})


def test_good_archives_land_in_the_job_folder(s3_endpoint: str, tmp_path: Path) -> None:
    _put(s3_endpoint, GOOD_MODEL, _archive({"history.json": b"{}", "metrics.json": b"{}"}))
    run_dir = _fetch(s3_endpoint, tmp_path)
    assert (run_dir / "model" / "class_names.json").read_bytes() == b'["a", "b"]'
    assert (run_dir / "history.json").is_file()


def test_an_output_archive_may_not_replace_the_jobs_own_files(
    s3_endpoint: str, tmp_path: Path
) -> None:
    crafted = _archive({"history.json": b"{}", "model/class_names.json": b'["evil"]'})
    _put(s3_endpoint, GOOD_MODEL, crafted)
    with pytest.raises(UnsafeArchive, match="model/class_names.json"):
        _fetch(s3_endpoint, tmp_path)
    assert (tmp_path / JOB / "model" / "class_names.json").read_bytes() == b'["a", "b"]'
    assert not (tmp_path / JOB / "history.json").exists()


def test_a_model_archive_with_a_link_leaves_no_half_extracted_model(
    s3_endpoint: str, tmp_path: Path
) -> None:
    crafted = _archive({"model.keras": b"k"}, links={"class_names.json": "/etc/passwd"})
    _put(s3_endpoint, crafted, _archive({"history.json": b"{}"}))
    with pytest.raises(UnsafeArchive, match="class_names.json"):
        _fetch(s3_endpoint, tmp_path)
    assert not (tmp_path / JOB / "model").exists()
