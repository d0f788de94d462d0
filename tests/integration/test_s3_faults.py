"""S3 that fails: through a fault-injecting proxy, every object still lands byte-equal; when
S3 cannot be used at all, the user gets one paragraph with the fix, never a traceback."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from defects.dataset import shards, steps
from defects.errors import StorageError
from defects.jobs.records import JobResult
from defects.pipeline import launch as pipeline
from defects.settings import resolve
from defects.storage import Layout, open_embedded, s3
from defects.testing.faulty_s3 import KINDS, FaultyS3
from tests.conftest import use_moto

TINY: dict[str, str | int] = {"epochs": 1, "image_size": "40x24", "batch_size": 8}
BUCKET = "defects"


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@pytest.fixture(scope="module")
def faulty_run(
    tiny_photos: Path, moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[JobResult, FaultyS3, str]]:
    """Stage, train and fetch one tiny process job with 30 % of the S3 requests failing."""
    root = tmp_path_factory.mktemp("faulty")
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_moto(monkeypatch, moto_endpoint)
        with FaultyS3(moto_endpoint, rate=0.3, seed=7) as proxy:
            monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.url)
            monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
            result = pipeline.run(
                data=tiny_photos,
                settings=resolve({"runs_dir": root / "runs"}),
                hyperparameters=TINY,
                job_name="faulty-job",
                data_dir=root / "data",
            )
        yield result, proxy, moto_endpoint


def _stored(endpoint: str) -> dict[str, bytes]:
    """Every object in the bucket, read straight from the server, not through the proxy."""
    direct = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    keys = s3.list_etags(direct, s3.S3Uri(BUCKET, ""), folder=False)
    return {key: direct.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


def test_a_job_through_failing_s3_succeeds_after_every_kind_of_fault(
    faulty_run: tuple[JobResult, FaultyS3, str],
) -> None:
    result, proxy, _ = faulty_run
    assert (result.run_dir / "model" / "model.keras").is_file()
    assert set(proxy.injected) == set(KINDS)
    assert min(proxy.injected.values()) >= 2


def test_every_staged_shard_landed_byte_equal(
    faulty_run: tuple[JobResult, FaultyS3, str], tiny_photos: Path
) -> None:
    result, _, endpoint = faulty_run
    stored = _stored(endpoint)
    dataset = steps.prepare(tiny_photos, data_dir=result.run_dir.parent.parent / "data")
    packed = shards.shards_for(dataset)
    prefix = f"defects/datasets/{dataset.dataset_id}/"
    for shard in packed:
        assert _md5(stored[prefix + shard.key]) == _md5(shard.path.read_bytes()), shard.key
    assert _md5(stored[prefix + "manifest.json"]) == _md5(
        (dataset.root / "manifest.json").read_bytes()
    )


def test_the_fetched_archives_equal_the_stored_ones(
    faulty_run: tuple[JobResult, FaultyS3, str],
) -> None:
    result, _, endpoint = faulty_run
    stored = _stored(endpoint)
    for archive in ("model.tar.gz", "output.tar.gz"):
        key = f"defects/jobs/faulty-job/output/{archive}"
        assert stored[key] == (result.run_dir / archive).read_bytes()


def test_s3_that_always_fails_is_a_storage_error_with_the_fix(
    moto_endpoint: str, tiny_photos: Path, tmp_path: Path
) -> None:
    dataset = steps.prepare(tiny_photos, data_dir=tmp_path)
    with (
        FaultyS3(moto_endpoint, rate=1.0, kinds=("503",), max_in_a_row=1000) as proxy,
        open_embedded(Layout("always-failing", "defects"), "us-east-1", proxy.url) as store,
        pytest.raises(StorageError) as caught,
    ):
        steps.stage(dataset, store)
    assert caught.value.message.startswith("S3 refused to look up the bucket always-failing:")
    assert "(503)" in caught.value.message
    assert "Run the command again" in caught.value.hint


def test_a_server_that_never_answers_is_a_storage_error(tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        host, port = silent.getsockname()
        session = boto3.Session(
            region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        impatient = session.client(
            "s3",
            endpoint_url=f"http://{host}:{port}",
            config=Config(read_timeout=0.5, connect_timeout=0.5, retries={"max_attempts": 1}),
        )
        with pytest.raises(StorageError) as caught:
            s3.list_etags(impatient, s3.S3Uri("bucket", "datasets"))
    assert caught.value.message.startswith("Could not reach S3 while trying to list")
    assert "AWS_ENDPOINT_URL_S3" in caught.value.hint


def test_fetching_from_a_stopped_server_is_a_storage_error(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    layout = Layout("defects", "defects")
    with (
        open_embedded(layout, "us-east-1", f"http://127.0.0.1:{port}") as store,
        pytest.raises(StorageError) as caught,
    ):
        pipeline.fetch("some-job", store, tmp_path)
    assert caught.value.message.startswith("Could not reach S3 while trying to look up")


# The commands of the README's `defects s3 serve` flow, as a user runs them.


def _defects(*arguments: str, cwd: Path, **environment: str) -> subprocess.Popen[str]:
    without_aws = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    nowhere = str(cwd / "no-such-file")
    # No credentials anywhere: not in the environment, the files, or instance metadata.
    without_aws.update(
        AWS_CONFIG_FILE=nowhere,
        AWS_SHARED_CREDENTIALS_FILE=nowhere,
        AWS_EC2_METADATA_DISABLED="true",
        **environment,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "defects", *arguments],
        cwd=cwd,
        env=without_aws,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_on_a_port_in_use_says_so_and_exits(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = _defects("s3", "serve", "--port", str(port), cwd=tmp_path)
        output, errors = command.communicate(timeout=60)
    assert command.returncode == 1
    assert f"Port {port} on 127.0.0.1 is in use" in errors
    assert "--port" in errors
    assert "Traceback" not in errors


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """``defects s3 serve`` in the background, as the README runs it; its endpoint."""
    port = _free_port()
    server = _defects("s3", "serve", "--port", str(port), cwd=tmp_path)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    try:
        yield endpoint
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_a_second_command_stages_to_the_served_s3_without_any_credentials(
    served: str, tiny_photos: Path, tmp_path: Path
) -> None:
    command = _defects("stage", str(tiny_photos), cwd=tmp_path, AWS_ENDPOINT_URL_S3=served)
    output, errors = command.communicate(timeout=120)
    assert command.returncode == 0, errors[-2000:]
    assert '"train": "s3://defects/defects/datasets/' in output


def test_a_second_command_after_the_server_stopped_says_how_to_fix_it(
    tiny_photos: Path, tmp_path: Path
) -> None:
    stopped = f"http://127.0.0.1:{_free_port()}"
    command = _defects("stage", str(tiny_photos), cwd=tmp_path, AWS_ENDPOINT_URL_S3=stopped)
    _, errors = command.communicate(timeout=120)
    assert command.returncode == 1
    assert "Could not reach S3 while trying to look up the bucket defects" in errors
    assert "defects s3 serve" in errors
    assert "Traceback" not in errors
