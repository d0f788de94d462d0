"""SIGKILL to `defects` (a CI timeout, the OOM killer, `kill -9`) at several moments of a job
on the process backend: the entry point does not outlive it, the listings say the job was
interrupted, and the job resumes to the end with nothing done lost."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from defects.jobs import containers
from tests.cli import run_cli
from tests.conftest import entry_points, start_defects, wait_until

pytestmark = pytest.mark.slow
FLAGS = ["--epochs", "3", "--image-size", "40x24", "--batch-size", "8"]
# Lines of the job's output, each at one moment: prepared, staging, training, fetching.
MOMENTS = {
    "prepared": "dataset ",
    "staging": "Embedded S3 server",
    "training": "Epoch 2/3",
    "fetching": "fit took",
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_sigkill_at_any_moment_leaves_nothing_running_and_loses_nothing(
    moment: str, tiny_photos: Path, tmp_path: Path
) -> None:
    name = f"killed-{moment}"
    process = start_defects(
        "run", "--data", str(tiny_photos), *FLAGS, "--job-name", name, "--runs-dir", "runs",
        cwd=tmp_path,
    )  # fmt: skip
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if MOMENTS[moment] in line:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "".join(seen)
    run_dir = tmp_path / "runs" / name
    # Nothing it started trains on unseen (nor is still exiting: its memory freed).
    assert wait_until(
        lambda: not entry_points(run_dir) and containers.still_running(run_dir) is None, 10
    ), (entry_points(run_dir), containers.still_running(run_dir))

    code, out, _ = run_cli("jobs", "--runs-dir", str(tmp_path / "runs"), "--json")
    assert code == 0
    assert [(job["name"], job["status"]) for job in json.loads(out)] == [(name, "interrupted")]

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(tmp_path)
        code, _, err = run_cli("train", "--resume", name, "--runs-dir", "runs")
    assert code == 0, err
    record = json.loads((run_dir / "job.json").read_text())
    assert record["status"] == "completed"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["training"]["epochs_run"] == 3
    if moment in ("training", "fetching"):
        # The epochs it had trained were kept: the resumed run went on from them.
        assert metrics["training"]["resumed_after_epoch"] >= 1


def test_a_search_killed_mid_trial_resumes_with_tune_resume(
    tiny_photos: Path, tmp_path: Path
) -> None:
    process = start_defects(
        "tune", "--data", str(tiny_photos), "--epochs", "2", "--image-size", "40x24",
        "--range", "learning_rate=0.001:0.01:log", "--max-jobs", "3", "--strategy", "random",
        "--job-name", "killed-tune", "--runs-dir", "runs",
        cwd=tmp_path,
    )  # fmt: skip
    assert process.stdout is not None
    trial_dir = tmp_path / "runs" / "killed-tune" / "killed-tune-002"
    seen = []
    for line in process.stdout:
        seen.append(line)
        if "Epoch 1/2" in line and trial_dir.is_dir():
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "".join(seen)
    assert wait_until(lambda: not entry_points(trial_dir), 10)

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(tmp_path)
        code, out, err = run_cli("tune", "--resume", "killed-tune", "--runs-dir", "runs")
    assert code == 0, err
    tuned = json.loads((tmp_path / "runs" / "killed-tune" / "tune.json").read_text())
    assert tuned["status"] == "completed"
    states = [trial["state"] for trial in tuned["trials"]]
    # The first trial's result was kept; the killed one is said to be, and the search went
    # on until three trials had completed.
    assert states[0] == "completed" and states[1] == "interrupted"
    assert states.count("completed") == 3
