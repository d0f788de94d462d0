import json
from pathlib import Path

import pytest

from defects.cli import main


def test_dry_run_prints_the_request_and_trains_nothing(
    tiny_photos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    main(
        ["train", "--data", str(tiny_photos), "--dry-run", "--epochs", "3", "--job-name", "planned"]
    )
    request = json.loads(capsys.readouterr().out)
    assert request["backend"] == "process"
    assert request["job_name"] == "planned"
    assert request["hyperparameters"]["epochs"] == "3"
    assert set(request["channels"]) == {"train", "validation", "test"}
    assert request["output_uri"] == "s3://defects/defects/jobs/planned/output"
    assert not (tmp_path / "runs").exists()


def test_the_request_carries_the_size_chosen_from_the_data(
    tiny_photos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    main(["train", "--data", str(tiny_photos), "--dry-run", "--job-name", "planned"])
    request = json.loads(capsys.readouterr().out)
    # The tiny photos are 160x90: under the pixel budget, so they keep their own size.
    assert request["hyperparameters"]["image_size"] == "160x90"
    assert request["hyperparameters"]["epochs"] == "auto"
