import json
from pathlib import Path

import pytest

from tests.cli import run_cli


def test_dry_run_prints_the_request_and_trains_nothing(
    tiny_photos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(
        "train", "--data", str(tiny_photos), "--dry-run", "--epochs", "3", "--job-name", "planned"
    )
    assert code == 0
    request = json.loads(out)
    assert request["backend"] == "process"
    assert request["job_name"] == "planned"
    assert request["hyperparameters"]["epochs"] == "3"
    assert set(request["channels"]) == {"train", "validation", "test", "pretrained"}
    assert request["output_uri"] == "s3://defects/defects/jobs/planned/output"
    assert not (tmp_path / "runs").exists()


def test_the_request_carries_the_size_chosen_from_the_data(
    tiny_photos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(
        "train", "--data", str(tiny_photos), "--dry-run", "--job-name", "planned"
    )
    assert code == 0
    request = json.loads(out)
    # The tiny photos are 160x90: under the pixel budget, so they keep their own size.
    assert request["hyperparameters"]["image_size"] == "160x90"
    assert request["hyperparameters"]["epochs"] == "auto"


def _refused_tuning(tiny_photos: Path, job_name: str, capsys: pytest.CaptureFixture[str]) -> str:
    """``defects tune --dry-run --job-name JOB_NAME``, which must fail: its error output."""
    arguments = ["tune", "--data", str(tiny_photos), "--range", "batch_size=8,16", "--dry-run"]
    code, _, err = run_cli(*arguments, "--job-name", job_name)
    assert code != 0
    return err


def test_a_tuning_job_name_longer_than_sagemaker_allows_is_refused_before_any_work(
    tiny_photos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    err = _refused_tuning(tiny_photos, "a-tuning-job-name-of-forty-characters-x", capsys)
    assert "longer than 32 characters" in err
    assert not (tmp_path / "data").exists()


def test_a_taken_tuning_job_name_points_to_tune_resume(
    tiny_photos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "searched").mkdir(parents=True)
    assert "defects tune --resume searched" in _refused_tuning(tiny_photos, "searched", capsys)
