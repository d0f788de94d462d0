"""`latest` and a job's name: the newest job, a search's best trial once it has ended, and
the newest job with a model when a model is asked for."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from defects.jobs.listing import find_job
from tests.cli import run_cli
from tests.jobfolders import job_folder, sample_runs, synthetic_photos


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return sample_runs(tmp_path, monkeypatch)


def test_latest_is_the_newest_job(runs: Path) -> None:
    assert find_job(runs, "latest") == runs / "gone"


def test_a_model_of_latest_is_the_newest_job_that_has_one(
    runs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from defects.inference.loading import locate_model

    with caplog.at_level(logging.INFO, logger="defects"):
        assert locate_model("latest", runs) == runs / "done"
    # The newer jobs without a model are named, so nobody mistakes whose model answered.
    assert "gone interrupted, broken failed" in caplog.text


def _search(runs_dir: Path, status: str, best: str | None) -> None:
    """A tuning job of three trials after the fixture's jobs, 003 the newest; its tune.json
    names ``best`` the best trial."""
    for number, accuracy in ((1, 0.5), (2, 0.9), (3, 0.6)):
        started = f"2026-12-02T0{number}:00:00+00:00"
        job_folder(runs_dir, f"tune-2/tune-2-00{number}", "completed", started, accuracy)
    record = {"tuning_job_name": "tune-2", "status": status, "best_trial": best}
    (runs_dir / "tune-2" / "tune.json").write_text(json.dumps(record))


def test_latest_after_a_search_is_its_best_trial_not_its_newest(
    runs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from defects.inference.loading import locate_model

    _search(runs, "completed", "tune-2-002")
    assert find_job(runs, "latest") == runs / "tune-2" / "tune-2-002"
    with caplog.at_level(logging.INFO, logger="defects"):
        assert locate_model("latest", runs) == runs / "tune-2" / "tune-2-002"
    # predict and evaluate say whose model answers.
    assert "Using the model of tune-2/tune-2-002, the best trial of tuning job tune-2." in (
        caplog.text
    )


def test_latest_while_a_search_runs_is_its_newest_trial(runs: Path) -> None:
    _search(runs, "running", "tune-2-002")
    assert find_job(runs, "latest") == runs / "tune-2" / "tune-2-003"


def test_latest_after_a_search_without_a_best_trial_is_its_newest(runs: Path) -> None:
    _search(runs, "completed", None)
    assert find_job(runs, "latest") == runs / "tune-2" / "tune-2-003"


def test_a_job_started_after_a_search_is_latest(runs: Path) -> None:
    _search(runs, "completed", "tune-2-002")
    job_folder(runs, "after", "completed", "2026-12-03T10:00:00+00:00", 0.7)
    assert find_job(runs, "latest") == runs / "after"


def test_a_model_of_latest_when_no_job_has_one_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs_dir = tmp_path / "runs"
    job_folder(runs_dir, "broken", "failed", "2026-12-01T11:00:00+00:00", error="out of memory")
    photo = synthetic_photos(tmp_path / "photos", "n1") / "good" / "0001.png"
    code, _, err = run_cli("predict", "latest", str(photo), "--runs-dir", str(runs_dir))
    assert code == 1
    assert "None of the 1 job(s)" in err and "has a model yet" in err
    assert "Traceback" not in err


def test_a_trial_is_found_by_its_name(runs: Path) -> None:
    assert find_job(runs, "trial-1") == runs / "tune-1" / "trial-1"


def test_latest_without_jobs_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli("describe", "latest", "--runs-dir", str(tmp_path / "none"))
    assert code == 1
    assert "There are no jobs" in err and "Traceback" not in err
