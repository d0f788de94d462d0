"""A job's life on the process backend: SIGTERM to `defects`, `train --resume`, and a
trained model kept when its results could not be saved."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from defects.errors import DataError, ResultsPending, StorageError
from defects.jobs.records import JobResult
from defects.pipeline import launch as pipeline
from defects.settings import resolve
from tests.cli import run_cli
from tests.conftest import entry_points, start_defects, use_moto, wait_for_checkpoint

TINY = {"epochs": 4, "image_size": "40x24", "batch_size": 8}
FLAGS = ["--epochs", "4", "--image-size", "40x24", "--batch-size", "8"]
JOB = "stopped"


@dataclass(frozen=True)
class Stopped:
    root: Path
    returncode: int
    output: str
    epochs_done: int


@pytest.fixture(scope="module")
def stopped(tiny_photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Stopped:
    """`defects run` given SIGTERM (the parent alone) once its second epoch is saved."""
    root = tmp_path_factory.mktemp("lifecycle")
    process = start_defects(
        "run", "--data", str(tiny_photos), *FLAGS, "--job-name", JOB, "--runs-dir", "runs", cwd=root
    )
    wait_for_checkpoint(process, root / "runs" / JOB, 2)
    state = root / "runs" / JOB / "opt" / "ml" / "checkpoints" / "state.json"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    return Stopped(root, process.returncode, output, json.loads(state.read_text())["epoch"])


def test_sigterm_stops_defects_like_ctrl_c_with_status_143(stopped: Stopped) -> None:
    assert stopped.returncode == 143, stopped.output[-3000:]
    assert "interrupted" in stopped.output
    assert "Traceback" not in stopped.output
    assert entry_points(stopped.root / "runs" / JOB) == []


def test_the_record_of_a_stopped_job_says_interrupted(stopped: Stopped) -> None:
    record = json.loads((stopped.root / "runs" / JOB / "job.json").read_text())
    assert record["status"] == "interrupted"
    assert stopped.epochs_done in {2, 3}
    assert record["seconds"] > 0
    assert f"`defects train --resume {JOB}` continues it" in " ".join(stopped.output.split())


def test_resume_ends_with_the_history_of_an_unbroken_run(
    stopped: Stopped, tiny_photos: Path, moto_endpoint: str, tmp_path: Path
) -> None:
    runs = stopped.root / "runs"
    first = json.loads((runs / JOB / "job.json").read_text())
    code, out, err = run_cli("train", "--resume", JOB, "--runs-dir", str(runs), "--json")
    assert code == 0, err[-3000:]
    assert f"succeeded: job {JOB} on process" in err
    described = json.loads(out)
    assert (described["name"], described["status"]) == (JOB, "completed")
    assert described["epochs_run"] == 4
    log = (runs / JOB / "job.log").read_text()
    assert f"Resuming from the checkpoint of epoch {stopped.epochs_done}." in log
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_moto(monkeypatch, moto_endpoint)
        unbroken = pipeline.run(
            data=tiny_photos,
            settings=resolve({"runs_dir": tmp_path / "runs"}),
            hyperparameters=TINY,
            job_name="unbroken",
            data_dir=stopped.root / "data",
        )
    assert isinstance(unbroken, JobResult)
    resumed = json.loads((runs / JOB / "history.json").read_text())
    expected = unbroken.history
    assert resumed["epoch"] == expected["epoch"] == [1, 2, 3, 4]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert resumed[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key
    record = json.loads((runs / JOB / "job.json").read_text())
    assert record["status"] == "completed"
    # One job: its first start, and a duration that counts the interrupted attempt too.
    assert record["started"] == first["started"]
    assert record["resumed"]["earlier_seconds"] == pytest.approx(first["seconds"])
    assert record["seconds"] >= first["seconds"] + record["details"]["entry_point_seconds"]

    code, _, err = run_cli("train", "--resume", JOB, "--runs-dir", str(runs))
    assert code == 2
    assert f"Job {JOB} has already completed: there is nothing to resume." in err


def test_resume_refuses_other_data_or_settings(stopped: Stopped) -> None:
    code, _, err = run_cli("train", "--resume", JOB, "--epochs", "9")
    assert code == 2
    assert "drop --epochs" in err


def test_a_failed_upload_keeps_the_model_and_fetch_finishes_the_job(
    tiny_photos: Path, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from defects.backends import artifacts

    def refuse(*_: object) -> None:
        raise StorageError("The S3 server refused the upload.")

    upload = artifacts.upload_file
    monkeypatch.setattr(artifacts, "upload_file", refuse)
    with pytest.raises(ResultsPending) as caught:
        pipeline.run(
            data=tiny_photos,
            settings=resolve({"runs_dir": tmp_path / "runs"}),
            hyperparameters={**TINY, "epochs": 1},
            job_name="unsaved",
            data_dir=tmp_path / "data",
        )
    run_dir = tmp_path / "runs" / "unsaved"
    model = run_dir / "opt" / "ml" / "model" / "model.keras"
    assert caught.value.message == (
        "Job unsaved trained, but uploading its results failed: The S3 server refused the "
        f"upload. The trained model is kept in {model.parent}."
    )
    assert (
        caught.value.hint == "`defects fetch unsaved` uploads and fetches them without retraining."
    )
    assert model.is_file()
    assert json.loads((run_dir / "job.json").read_text())["status"] == "unfetched"

    monkeypatch.setattr(artifacts, "upload_file", upload)
    code, out, err = run_cli("fetch", "unsaved", "--runs-dir", str(tmp_path / "runs"), "--json")
    assert code == 0, err[-3000:]
    assert "succeeded: job unsaved on process" in err
    assert json.loads(out)["status"] == "completed"
    assert json.loads((run_dir / "job.json").read_text())["status"] == "completed"
    assert (run_dir / "history.json").is_file() and (run_dir / "model" / "model.keras").is_file()
    assert (run_dir / "job.log").read_text().count("Hyperparameters: ") == 1  # Not retrained.


def test_results_that_could_not_be_unpacked_are_kept_and_fetch_finishes_with_a_new_server(
    tiny_photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `fetch` starts its own embedded S3 server, empty: the kept model goes into a bucket
    # that the training's server had and this one has not.
    extract = pipeline.safe_extract

    def full(archive: Path, *args: object, **kwargs: object) -> list[Path]:
        raise DataError(f"Could not extract {archive}: No space left on device.")

    monkeypatch.setattr(pipeline, "safe_extract", full)
    runs = tmp_path / "runs"
    with pytest.raises(ResultsPending, match="No space left on device"):
        pipeline.run(
            data=tiny_photos,
            settings=resolve({"runs_dir": runs}),
            hyperparameters={**TINY, "epochs": 1},
            job_name="unpacked",
            data_dir=tmp_path / "data",
        )
    run_dir = runs / "unpacked"
    assert json.loads((run_dir / "job.json").read_text())["status"] == "unfetched"
    assert (run_dir / "opt" / "ml" / "model" / "model.keras").is_file()

    monkeypatch.setattr(pipeline, "safe_extract", extract)
    # A command of its own, as a user runs it: moto's state lives as long as its process.
    fetching = start_defects("fetch", "unpacked", "--runs-dir", "runs", cwd=tmp_path)
    output, _ = fetching.communicate(timeout=300)
    assert fetching.returncode == 0, output[-3000:]
    assert "succeeded: job unpacked on process" in output
    assert json.loads((run_dir / "job.json").read_text())["status"] == "completed"
    assert (run_dir / "history.json").is_file() and (run_dir / "model" / "model.keras").is_file()
    assert (run_dir / "job.log").read_text().count("Hyperparameters: ") == 1  # Not retrained.


def test_sigterm_to_the_entry_point_leaves_a_resumable_job(
    tiny_photos: Path, tmp_path: Path
) -> None:
    process = start_defects(
        "run",
        "--data",
        str(tiny_photos),
        *FLAGS,
        "--job-name",
        "reclaimed",
        "--runs-dir",
        "runs",
        cwd=tmp_path,
    )
    run_dir = tmp_path / "runs" / "reclaimed"
    wait_for_checkpoint(process, run_dir, 1)
    (entry_point,) = entry_points(run_dir)
    os.kill(entry_point, signal.SIGTERM)  # As a spot reclaim stops it.
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1, output[-3000:]
    assert "training was interrupted" in output
    assert "defects train --resume reclaimed" in output
    assert "The entry point exited with status" not in output
    assert json.loads((run_dir / "job.json").read_text())["status"] == "interrupted"
