"""Job names reserved once, job folders held by one command, statuses that say what ended
a job, and SIGTERM's exit status."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from defects import signals
from defects.backends.base import CloudOptions
from defects.errors import (
    ConfigError,
    DataError,
    ResultsPending,
    TrainingFailed,
    TrainingInterrupted,
)
from defects.jobs.records import read_record
from defects.pipeline import lifecycle
from tests.conftest import CLI


def test_of_two_commands_reserving_one_name_at_once_exactly_one_gets_it(tmp_path: Path) -> None:
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def reserve() -> None:
        barrier.wait()
        try:
            lifecycle.reserve(tmp_path / "runs", "same-name")
            outcomes.append("reserved")
        except ConfigError as error:
            outcomes.append(error.message)

    threads = [threading.Thread(target=reserve) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refusal = f"A job folder {tmp_path / 'runs' / 'same-name'} already exists."
    assert sorted(outcomes) == [refusal] * 7 + ["reserved"]


def test_a_held_job_folder_is_refused_to_a_second_command(tmp_path: Path) -> None:
    with (
        lifecycle.locked(tmp_path),
        pytest.raises(ConfigError) as caught,
        lifecycle.locked(tmp_path),
    ):
        pass
    assert caught.value.message == f"Job {tmp_path.name} is in use by another defects command."


def test_a_folder_is_free_again_once_its_command_ends(tmp_path: Path) -> None:
    with lifecycle.locked(tmp_path):
        pass
    with lifecycle.locked(tmp_path):
        pass


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (KeyboardInterrupt(), "interrupted"),
        (signals.Terminated(), "interrupted"),
        (TrainingInterrupted("stopped"), "interrupted"),
        (ResultsPending("not uploaded"), "unfetched"),
        (TrainingFailed("bad"), "failed"),
        (DataError("no images"), "failed"),
    ],
)
def test_the_status_says_what_ended_the_job(error: BaseException, status: str) -> None:
    assert lifecycle.status_of(error) == status


def test_whatever_ends_a_held_job_is_written_into_its_record(tmp_path: Path) -> None:
    with pytest.raises(signals.Terminated), lifecycle.held(tmp_path, {"status": "preparing"}):
        raise signals.Terminated()
    record = read_record(tmp_path)
    assert record["status"] == "interrupted"
    assert record["error"] == "Terminated"


@pytest.mark.parametrize(
    ("backend", "error", "hinted"),
    [
        ("process", KeyboardInterrupt(), True),
        ("local", signals.Terminated(), True),
        # A SageMaker job goes on without this command; the backend says what became of it.
        ("sagemaker", KeyboardInterrupt(), False),
        ("process", TrainingFailed("exit 1"), False),
    ],
)
def test_an_interrupted_job_on_this_machine_says_how_to_continue_it(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    backend: str,
    error: BaseException,
    hinted: bool,
) -> None:
    run_dir = tmp_path / "defects-1"
    run_dir.mkdir()
    held = lifecycle.held(run_dir, {"status": "running", "backend": backend})
    with caplog.at_level(logging.WARNING, logger="defects"), pytest.raises(type(error)), held:
        raise error
    assert ("`defects train --resume defects-1` continues it" in caplog.text) == hinted


def test_sigterm_exits_143_and_ctrl_c_130() -> None:
    assert signals.exit_status(signals.Terminated()) == 143
    assert signals.exit_status(KeyboardInterrupt()) == 130
    try:
        try:
            raise signals.Terminated()
        except KeyboardInterrupt as error:
            raise RuntimeError("as click re-raises it") from error
    except RuntimeError as wrapped:
        assert signals.exit_status(wrapped) == 143


def test_cloud_options_survive_the_record() -> None:
    options = CloudOptions(
        spot=True, subnets=("subnet-1",), security_groups=("sg-1",), tags=(("team", "qa"),)
    )
    recorded = json.loads(json.dumps(lifecycle.options_record(options)))
    assert lifecycle.options_from_record(recorded) == options


@pytest.mark.parametrize("runs", ["afile", "afile/runs"])
def test_a_runs_folder_that_is_a_file_is_refused_before_any_work(tmp_path: Path, runs: str) -> None:
    (tmp_path / "afile").write_text("not a folder")
    with pytest.raises(ConfigError, match="is a file") as caught:
        lifecycle.check_runs_dir(tmp_path / runs)
    assert "--runs-dir" in caught.value.hint
    with pytest.raises(ConfigError, match="is a file"):
        lifecycle.reserve(tmp_path / runs, "defects-1")
    assert (tmp_path / "afile").read_text() == "not a folder"


def test_a_runs_folder_still_to_make_is_fine_and_checking_makes_nothing(tmp_path: Path) -> None:
    lifecycle.check_runs_dir(tmp_path / "new" / "runs")
    assert not (tmp_path / "new").exists()


def test_tune_refuses_a_runs_folder_that_is_a_file(tmp_path: Path) -> None:
    from tests.cli import run_cli

    (tmp_path / "afile").write_text("")
    code, _, err = run_cli(
        "tune", "--range", "seed=1,2", "--runs-dir", str(tmp_path / "afile"), "--dry-run"
    )
    assert code == 2
    assert "is a file" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "command",
    [("evaluate", "latest", "--out"), ("prepare", "photos", "--out"), ("synth",)],
)
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    from tests.cli import run_cli

    taken = tmp_path / "afile"
    taken.write_text("kept")
    code, _, err = run_cli(*command, str(taken))
    assert code == 2
    assert "is a file" in err and "Traceback" not in err
    assert taken.read_text() == "kept"


def _one_photo_of_oil(tiny_photos: Path, tmp_path: Path) -> Path:
    import shutil

    photos = tmp_path / "photos"
    shutil.copytree(tiny_photos, photos)
    for extra in sorted((photos / "oil").iterdir())[1:]:
        extra.unlink()
    return photos


@pytest.mark.parametrize("command", ["run", "train"])
@pytest.mark.parametrize("data", ["missing", "one photo of oil"])
def test_a_job_refused_for_its_data_before_any_work_leaves_no_job_folder(
    cli: CLI,
    tiny_photos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    data: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "missing" if data == "missing" else _one_photo_of_oil(tiny_photos, tmp_path)
    code, _, err = cli(command, "--data", str(folder), "--job-name", "refused")
    assert code == 1, err
    assert "problem with the input data" in err
    assert not (tmp_path / "runs" / "refused").exists()


def test_a_job_that_started_keeps_its_folder_and_says_how_it_ended(tmp_path: Path) -> None:
    run_dir = tmp_path / "defects-1"
    run_dir.mkdir()
    with pytest.raises(DataError), lifecycle.held(run_dir, {"status": "preparing"}, new=True):
        record = read_record(run_dir)
        (run_dir / "job.json").write_text(json.dumps({**record, "status": "running"}))
        raise DataError("an archive of the results is unsafe")
    assert read_record(run_dir)["status"] == "failed"


def test_resuming_a_completed_job_is_headed_as_what_it_is(tmp_path: Path, cli: CLI) -> None:
    from tests.jobfolders import job_folder

    job_folder(tmp_path / "runs", "done", "completed", "2026-12-01T10:00:00+00:00", 0.9)
    code, _, err = cli("train", "--resume", "done", "--runs-dir", str(tmp_path / "runs"))
    assert code == 2
    assert err.startswith("error: nothing to resume\nJob done has already completed")
