"""The compose file of a local-mode job, as the SDK writes it through backends.compose: a
network of the job's own, no real credentials, readable by its owner only (no Docker)."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from defects.backends import compose, modeltrainer

PLANTED_KEY = "AKIAPLANTED0123456789"
PLANTED_SECRET = "planted-secret-do-not-leak"
PLANTED_TOKEN = "planted-session-token"


def _write_compose_file(root: Path) -> dict[str, Any]:
    """What the SDK writes for one job whose session holds planted credentials."""
    from sagemaker.train.local.local_container import _LocalContainer

    planted = boto3.Session(
        region_name="us-east-1",
        aws_access_key_id=PLANTED_KEY,
        aws_secret_access_key=PLANTED_SECRET,
        aws_session_token=PLANTED_TOKEN,
    )
    container = _LocalContainer(
        training_job_name="job-a",
        instance_type="local_cpu",
        instance_count=1,
        image="defects-tf-training:test",
        container_root=str(root),
        input_data_config=[],
        environment={"TRAINING_JOB_NAME": "job-a"},
        hyper_parameters={},
        sagemaker_session=modeltrainer.make_session("us-east-1", "bucket", planted),
        container_entrypoint=["/bin/sh"],
        container_arguments=["-c", "true"],
    )
    content: dict[str, Any] = container._generate_compose_file(container.environment or {}, [])
    return content


@pytest.fixture
def written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Short-lived credentials are used only when the SDK is told to (or has no metadata).
    monkeypatch.setenv("USE_SHORT_LIVED_CREDENTIALS", "1")
    root = tmp_path / "sm-job-a"
    root.mkdir()
    with compose.isolated_compose_files():
        _write_compose_file(root)
    return root / "docker-compose.yaml"


def test_the_sdk_alone_writes_the_sessions_credentials_where_anyone_may_read_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USE_SHORT_LIVED_CREDENTIALS", "1")
    _write_compose_file(tmp_path)
    text = (tmp_path / "docker-compose.yaml").read_text()
    assert PLANTED_SECRET in text
    assert "name: sagemaker-local" in text


def test_the_compose_file_holds_no_real_credentials(written: Path) -> None:
    text = written.read_text()
    for planted in (PLANTED_KEY, PLANTED_SECRET, PLANTED_TOKEN):
        assert planted not in text
    environment = yaml.safe_load(text)["services"]["algo-1"]["environment"]
    credentials = sorted(entry for entry in environment if entry.startswith("AWS_"))
    assert credentials == ["AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing"]


def test_the_compose_file_is_readable_by_its_owner_only(written: Path) -> None:
    assert stat.S_IMODE(written.stat().st_mode) == 0o600


def test_the_network_belongs_to_the_jobs_compose_project(written: Path) -> None:
    content = yaml.safe_load(written.read_text())
    assert content["networks"] == {"sagemaker-local": {}}
    assert content["services"]["algo-1"]["networks"] == {"sagemaker-local": {"aliases": ["algo-1"]}}


def test_other_settings_of_the_service_are_kept(written: Path) -> None:
    service = yaml.safe_load(written.read_text())["services"]["algo-1"]
    assert service["image"] == "defects-tf-training:test"
    assert "TRAINING_JOB_NAME=job-a" in service["environment"]
    assert service["entrypoint"] == ["/bin/sh", "-c", "true"]
