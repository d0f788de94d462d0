"""jobs, describe, compare, logs, stop and `latest` on job folders written by the test."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from defects.jobs.listing import find_job, list_jobs
from defects.jobs.reports import compare_jobs
from tests.cli import run_cli
from tests.jobfolders import job_folder, sample_runs


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return sample_runs(tmp_path, monkeypatch)


def test_jobs_are_listed_newest_first_with_nested_trials(runs: Path) -> None:
    assert [job.name for job in list_jobs(runs)] == ["gone", "broken", "done", "tune-1/trial-1"]


def test_a_running_job_whose_process_is_gone_is_interrupted(runs: Path) -> None:
    statuses = {job.name: job.status for job in list_jobs(runs)}
    assert statuses == {
        "gone": "interrupted",
        "broken": "failed",
        "done": "completed",
        "tune-1/trial-1": "completed",
    }


def test_a_running_job_whose_process_lives_is_running(runs: Path) -> None:
    record = json.loads((runs / "gone" / "job.json").read_text())
    record["pid"] = os.getpid()
    (runs / "gone" / "job.json").write_text(json.dumps(record))
    assert list_jobs(runs)[0].status == "running"


def test_a_resumed_running_job_counts_its_earlier_attempts_not_the_pause(runs: Path) -> None:
    record = json.loads((runs / "gone" / "job.json").read_text())
    # First started days ago, interrupted after 100 s, resumed 10 s ago.
    resumed_at = datetime.now(UTC) - timedelta(seconds=10)
    record["pid"] = os.getpid()
    record["resumed"] = {"at": resumed_at.isoformat(), "earlier_seconds": 100.0}
    (runs / "gone" / "job.json").write_text(json.dumps(record))
    job = list_jobs(runs)[0]
    assert job.status == "running"
    assert job.seconds is not None and 109 <= job.seconds <= 130


def test_jobs_json_has_metrics_and_data(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli("jobs", "--json", "--status", "completed", "--limit", "1")
    assert code == 0
    listed = json.loads(out)
    assert [job["name"] for job in listed] == ["done"]
    assert listed[0]["validation_accuracy"] == 0.9
    assert listed[0]["test_accuracy"] == pytest.approx(0.8)
    assert listed[0]["macro_f1"] == 0.85
    assert listed[0]["dataset_id"] == "abc123"
    assert listed[0]["image_size"] == "40x24"
    assert listed[0]["seconds"] == 12.5


def test_jobs_table_shows_each_job(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli("jobs")
    assert code == 0
    for text in ("done", "broken", "gone", "tune-1/trial-1", "interrupted", "0.900", "12s"):
        assert text in out


def _checkpoint(run_dir: Path, state: object) -> None:
    folder = run_dir / "opt" / "ml" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps(state))


def test_history_of_a_job_without_results_is_its_last_checkpoints(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "gone" was running when its process died: interrupted after three epochs.
    _checkpoint(
        runs / "gone",
        {
            "epoch": 3,
            "history": {"loss": [0.9, 0.7, 0.6], "val_macro_f1": [0.41, 0.83, 0.62]},
            "extra": {"early_stopping": {"best": 0.83, "best_epoch": 1, "wait": 1}},
            "model_file": "model-0.keras",
        },
    )
    code, out, _ = run_cli("history", "gone")
    assert code == 0
    assert "so far (interrupted)" in out and "2 (best)" in out and "0.8300" in out
    assert "3 epoch(s) completed" in out and "`defects train --resume gone`" in out
    code, out, _ = run_cli("history", "gone", "--json")
    assert json.loads(out) == {
        "epoch": [1, 2, 3],
        "loss": [0.9, 0.7, 0.6],
        "val_macro_f1": [0.41, 0.83, 0.62],
        "best_epoch": 2,
        "status": "interrupted",
    }


def test_history_with_an_unreadable_checkpoint_says_there_is_none(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for state in ({"epoch": "three"}, ["a", "list"], {"epoch": 1, "history": {"loss": [None]}}):
        shutil.rmtree(runs / "gone" / "opt", ignore_errors=True)
        _checkpoint(runs / "gone", state)
        code, _, err = run_cli("history", "gone")
        assert code == 1
        assert "history.json does not exist" in err and "Traceback" not in err
    # Odd early-stopping state only loses the mark of the best epoch.
    shutil.rmtree(runs / "gone" / "opt")
    _checkpoint(runs / "gone", {"epoch": 1, "history": {"loss": [0.5]}, "extra": ["odd"]})
    code, out, _ = run_cli("history", "gone")
    assert code == 0 and "(best)" not in out and "0.5000" in out


def test_describe_json_has_everything(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli("describe", "done", "--json")
    assert code == 0
    described = json.loads(out)
    assert described["status"] == "completed"
    assert described["hyperparameters"]["epochs"] == 2
    assert described["dataset"]["id"] == "abc123"
    assert described["dataset"]["counts"] == {"train": {"good": 1}, "validation": {}, "test": {}}
    assert described["metrics"]["validation"]["accuracy"] == 0.9
    assert described["epochs_run"] == 2
    assert described["s3"]["output"] == "s3://defects/defects/jobs/done/output"
    assert described["artifacts"]["model"] == str(runs / "done" / "model")


def test_describe_shows_class_names_as_written(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest_path = runs.parent / "data" / "prepared" / "abc123" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["classes"] = ["ok", "fissuré"]
    manifest_path.write_text(json.dumps(manifest))
    code, out, _ = run_cli("describe", "done")
    assert code == 0
    assert '["ok", "fissuré"]' in out


def test_describe_piped_keeps_whole_paths_and_rounds_every_score(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs_dir = tmp_path / "a-runs-folder-with-a-name-long-enough-to-pass-eighty-columns" / "runs"
    run_dir = job_folder(runs_dir, "done", "completed", "2026-12-01T10:00:00+00:00", 0.9)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["validation"]["per_class"]["oil"]["recall"] = 13 / 14
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    code, out, _ = run_cli("describe", "done", "--runs-dir", str(runs_dir))
    assert code == 0
    assert len(str(run_dir.resolve() / "model.tar.gz")) > 80
    assert str(run_dir.resolve() / "model.tar.gz") in out
    assert '"oil": 0.9286' in out and "0.9285714" not in out


def test_describe_says_why_a_job_failed(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli("describe", "broken")
    assert code == 0
    assert "out of memory" in out


def test_compare_shows_differing_hyperparameters_and_draws_curves(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli("compare", "done", "trial-1", "--json")
    assert code == 0
    compared = json.loads(out)
    assert compared["differing_hyperparameters"] == {"epochs": {"done": 2, "tune-1/trial-1": 4}}
    assert compared["metrics"]["done"]["validation_accuracy"] == 0.9
    assert compared["metrics"]["tune-1/trial-1"]["validation_accuracy"] == 0.8
    assert (runs / "compare.png").stat().st_size > 0
    assert err == "Validation curves of every job: runs/compare.png\n"


@pytest.mark.parametrize(
    ("given", "written"),
    [("figures", "figures/compare.png"), ("curves", "curves.png"), ("a/b/c.svg", "a/b/c.svg")],
)
def test_compare_writes_its_figure_into_a_folder_or_under_the_name_given(
    runs: Path, capsys: pytest.CaptureFixture[str], given: str, written: str
) -> None:
    (runs.parent / "figures").mkdir()
    code, _, err = run_cli("compare", "done", "trial-1", "--out", given)
    assert code == 0, err
    assert (runs.parent / written).stat().st_size > 0
    assert err == f"Validation curves of every job: {written}\n"


def test_compare_refuses_a_figure_name_it_cannot_write_and_a_file_in_the_way(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli("compare", "done", "trial-1", "--out", "notes.txt")
    assert code != 0
    assert "notes.txt: a figure cannot be written as .txt" in err and ".png" in err
    (runs.parent / "taken").write_text("a file")
    code, _, err = run_cli("compare", "done", "trial-1", "--out", "taken/compare.png")
    assert code != 0
    assert "error: a file is in the way" in err and "Traceback" not in err
    assert (runs.parent / "taken").read_text() == "a file"


def test_compare_counts_the_checkpointed_epochs_of_an_interrupted_job(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _checkpoint(
        runs / "gone",
        {"epoch": 2, "history": {"loss": [1.2, 0.9], "val_accuracy": [0.4, 0.6]}},
    )
    code, out, _ = run_cli("compare", "done", "gone", "--json")
    assert code == 0
    compared = json.loads(out)
    assert compared["metrics"]["gone"]["status"] == "interrupted"
    assert compared["metrics"]["gone"]["epochs_run"] == 2
    # Its curves are drawn from the same epochs.
    histories = compare_jobs([runs / "done", runs / "gone"], runs)["histories"]
    assert histories["gone"]["val_accuracy"] == [0.4, 0.6]


def test_plot_of_an_interrupted_job_draws_its_epochs_so_far(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = {
        "loss": [1.2, 0.9],
        "val_loss": [1, 2],
        "accuracy": [0.3, 0.5],
        "val_accuracy": [0.2, 0.4],
    }
    _checkpoint(runs / "gone", {"epoch": 2, "history": history})
    code, out, _ = run_cli("plot", "gone")
    assert code == 0
    assert out.split() == [str(Path("runs") / "gone" / "curves.png")]
    assert (runs / "gone" / "curves.png").stat().st_size > 0


def test_compare_needs_two_jobs(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli("compare", "done")
    assert code == 2
    assert "at least two jobs" in err


def test_logs_hide_progress_lines_and_tensorflow_noise(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (runs / "done" / "job.log").write_text(
        "E0000 00:00:1796197383.034419   28163 cuda_platform.cc:52] failed call to cuInit: "
        "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n"
        'defects-progress {"event": "step", "epoch": 1, "epochs": 2, "step": 1}\n'
        "Epoch 1/2 - 1s - loss: 1.2000\n"
    )
    code, out, _ = run_cli("logs", "done")
    assert code == 0
    assert out == "Epoch 1/2 - 1s - loss: 1.2000\n"


def test_stop_a_finished_job_says_so(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli("stop", "broken")
    assert code == 0
    assert out == "Job broken is not running: it is failed.\n"


def test_stop_sends_sigterm_to_the_process_running_the_job(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    record = json.loads((runs / "gone" / "job.json").read_text())
    record["pid"] = sleeper.pid
    (runs / "gone" / "job.json").write_text(json.dumps(record))
    try:
        code, out, _ = run_cli("stop", "latest")
        assert sleeper.wait(timeout=10) == -signal.SIGTERM
    finally:
        sleeper.kill()
    assert code == 0
    assert out.startswith(f"Sent SIGTERM to process {sleeper.pid}")


def test_stop_on_another_machine_explains_ctrl_c(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = json.loads((runs / "gone" / "job.json").read_text())
    record["host"] = "elsewhere"
    (runs / "gone" / "job.json").write_text(json.dumps(record))
    code, _, err = run_cli("stop", "gone")
    assert code == 1
    assert "Ctrl-C in its terminal" in err


def test_plot_takes_latest(runs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli("plot", "latest", "--runs-dir", str(runs / "tune-1"))
    assert code == 0
    assert out.splitlines() == [
        str(runs / "tune-1" / "trial-1" / "curves.png"),
        str(runs / "tune-1" / "trial-1" / "confusion.png"),
    ]


DAMAGED_METRICS = ["[1, 2]", '{"validation": 5, "test": [1]}', "{not json", '"text"']


@pytest.mark.parametrize("damage", DAMAGED_METRICS)
def test_a_damaged_metrics_file_leaves_the_listing_whole(
    runs: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    (runs / "done" / "metrics.json").write_text(damage)
    code, out, err = run_cli("jobs", "--runs-dir", str(runs), "--json")
    assert code == 0, err
    listed = {job["name"]: job for job in json.loads(out)}
    assert listed["done"]["validation_accuracy"] is None
    assert listed["tune-1/trial-1"]["validation_accuracy"] == 0.8
    for command in (["describe", "done"], ["compare", "done", "tune-1/trial-1"]):
        code, _, err = run_cli(*command, "--runs-dir", str(runs))
        assert code == 0, err


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        ('{"epoch": "x", "loss": [1]}', "its 'epoch' is not a list of epoch numbers"),
        ('{"epoch": [1, 2], "loss": [0.5]}', "its 'loss' is not a list of 2 values"),
        ('{"epoch": [1], "val_loss": ["a"]}', "its 'val_loss' holds something other than"),
        ('{"epoch": [1], "kept_epoch": "one"}', "its 'kept_epoch' is not an epoch number"),
        ("[]", "it is not a JSON object"),
    ],
)
def test_history_and_plot_name_a_damaged_history_and_how_to_restore_it(
    runs: Path, capsys: pytest.CaptureFixture[str], damage: str, said: str
) -> None:
    (runs / "done" / "history.json").write_text(damage)
    for command in ("history", "plot"):
        code, _, err = run_cli(command, "done", "--runs-dir", str(runs))
        assert code == 1
        assert "error: a job file is damaged" in err and said in " ".join(err.split())
        assert "output.tar.gz" in err and "Traceback" not in err


def test_plot_names_a_damaged_confusion_matrix(
    runs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = runs / "done" / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["validation"]["confusion_matrix"] = [[1, 2], [3]]
    path.write_text(json.dumps(metrics))
    code, _, err = run_cli("plot", "done", "--runs-dir", str(runs))
    assert code == 1
    assert "validation confusion matrix is not one row of counts per class" in err


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--resume", "evil"],
        ["fetch", "evil"],
        ["plot", "evil"],
        ["history", "evil"],
        ["describe", "evil"],
        ["evaluate", "evil"],
        ["tune", "--resume", "evil"],
    ],
)
def test_a_job_folder_reached_by_a_link_planted_in_runs_is_never_followed(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    outside = tmp_path / "outside"
    shutil.copytree(runs / "broken", outside)
    (runs / "evil").symlink_to(outside)
    before = sorted(p.relative_to(outside) for p in outside.rglob("*"))
    code, _, err = run_cli(*command, "--runs-dir", str(runs))
    assert code == 1
    assert "is a symbolic link" in err and "never follows one" in err
    assert sorted(p.relative_to(outside) for p in outside.rglob("*")) == before


def test_a_trial_under_a_linked_tuning_folder_is_neither_listed_nor_found(
    runs: Path, tmp_path: Path
) -> None:
    shutil.move(runs / "tune-1", tmp_path / "tune-elsewhere")
    (runs / "tune-1").symlink_to(tmp_path / "tune-elsewhere")
    assert "tune-1/trial-1" not in [job.name for job in list_jobs(runs)]
    assert find_job(runs, "trial-1") == runs / "trial-1"
