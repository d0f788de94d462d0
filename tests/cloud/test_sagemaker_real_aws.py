"""Opt-in, against real AWS: the preflight and the dry run only, which create nothing and
cost nothing. Run with DEFECTS_TEST_REAL_AWS=1, AWS credentials and DEFECTS_ROLE_ARN set:

    DEFECTS_TEST_REAL_AWS=1 pytest -m aws tests/cloud
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from defects.backends.cloud import SageMakerBackend
from defects.settings import resolve
from tests.cloud.conftest import Cli

# Read before the autouse fixture clears AWS_* and DEFECTS_* for every test.
_DEVELOPER_ENVIRONMENT = {
    name: value for name, value in os.environ.items() if name.startswith(("AWS_", "DEFECTS_"))
}

pytestmark = [
    pytest.mark.aws,
    pytest.mark.skipif(
        os.environ.get("DEFECTS_TEST_REAL_AWS", "").lower() not in {"1", "true", "yes"},
        reason="talks to real AWS; set DEFECTS_TEST_REAL_AWS=1 to run it",
    ),
]


@pytest.fixture
def real_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in _DEVELOPER_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DEFECTS_BACKEND", "sagemaker")
    monkeypatch.chdir(tmp_path)
    if not os.environ.get("DEFECTS_ROLE_ARN"):
        pytest.fail("DEFECTS_ROLE_ARN must name an execution role for the real-AWS test")


def test_preflight_passes_against_real_aws(real_aws: None) -> None:
    checks = SageMakerBackend(resolve()).checks()
    failed = [f"{check.name}: {check.detail}" for check in checks if not check.ok]
    assert failed == []


def test_dry_run_names_the_role_and_the_gpu_image(
    real_aws: None, cli: Cli, tiny_photos: Path
) -> None:
    code, out, err = cli("train", "--dry-run", "--data", str(tiny_photos), "--job-name", "real")
    assert code == 0, err
    request = json.loads(out)
    assert request["RoleArn"] == os.environ["DEFECTS_ROLE_ARN"]
    assert request["AlgorithmSpecification"]["TrainingImage"].endswith(
        "/tensorflow-training:2.21-gpu-py312"
    )
