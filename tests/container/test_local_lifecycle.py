"""A local-mode job's life: SIGTERM to `defects`, SIGTERM to the entry point in its
container (what a spot reclaim sends), and `train --resume` (needs Docker)."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.cli import run_cli
from tests.conftest import start_defects, wait_for_checkpoint, wait_until
from tests.container.test_local_backend import _containers

pytestmark = pytest.mark.container
FLAGS = ["--epochs", "4", "--image-size", "40x24", "--batch-size", "8"]
# Stops the entry point inside its container, as SageMaker does on a spot reclaim.
_SIGTERM_ENTRY_POINT = (
    "for p in /proc/[0-9]*; do [ $p = /proc/$$ ] && continue; "
    'case "$(tr "\\0" " " < $p/cmdline 2>/dev/null)" in *python*train.py*) '
    "kill -TERM ${p#/proc/};; esac; done"
)


def _start(root: Path, image: str, photos: Path, job: str) -> subprocess.Popen[str]:
    return start_defects(
        "run",
        "--data",
        str(photos),
        *FLAGS,
        "--job-name",
        job,
        "--runs-dir",
        "runs",
        cwd=root,
        environment={"DEFECTS_BACKEND": "local", "DEFECTS_TRAINING_IMAGE": image},
    )


def _status(run_dir: Path) -> str:
    return str(json.loads((run_dir / "job.json").read_text())["status"])


def test_sigterm_to_defects_cleans_up_and_resume_ends_like_an_unbroken_run(
    tiny_photos: Path, training_image: str, tmp_path: Path
) -> None:
    run_dir = tmp_path / "runs" / "stopped"
    process = _start(tmp_path, training_image, tiny_photos, "stopped")
    wait_for_checkpoint(process, run_dir, 2)
    process.send_signal(signal.SIGTERM)  # To defects alone, not its process group.
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 143, output[-3000:]
    assert "Traceback" not in output
    assert _containers("stopped") == set()
    assert not (run_dir / "sm-stopped" / "docker-compose.yaml").exists()
    assert _status(run_dir) == "interrupted"

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("DEFECTS_TRAINING_IMAGE", training_image)
        code, out, err = run_cli("train", "--resume", "stopped", "--runs-dir", str(run_dir.parent))
    assert code == 0, err[-3000:]
    assert out.startswith("succeeded: job stopped on local")
    assert "Resuming from the checkpoint of epoch " in (run_dir / "job.log").read_text()

    unbroken = _start(tmp_path, training_image, tiny_photos, "unbroken")
    assert unbroken.wait(timeout=600) == 0
    resumed = json.loads((run_dir / "history.json").read_text())
    expected = json.loads((tmp_path / "runs" / "unbroken" / "history.json").read_text())
    assert resumed["epoch"] == expected["epoch"] == [1, 2, 3, 4]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert resumed[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key


def test_sigterm_to_the_entry_point_leaves_a_resumable_job(
    tiny_photos: Path, training_image: str, tmp_path: Path
) -> None:
    run_dir = tmp_path / "runs" / "reclaimed"
    process = _start(tmp_path, training_image, tiny_photos, "reclaimed")
    wait_for_checkpoint(process, run_dir, 1)
    (container,) = _containers("reclaimed")
    subprocess.run(["docker", "exec", container, "sh", "-c", _SIGTERM_ENTRY_POINT], check=True)
    output, _ = process.communicate(timeout=180)
    assert process.returncode == 1, output[-3000:]
    assert "training was interrupted" in output
    assert "Training was interrupted by SIGTERM after epoch " in output
    assert "defects train --resume reclaimed" in output
    assert _status(run_dir) == "interrupted"
    assert _containers("reclaimed") == set()
    state = json.loads((run_dir / "opt" / "ml" / "checkpoints" / "state.json").read_text())
    assert state["epoch"] >= 1


def _networks(job: str) -> list[str]:
    listing = subprocess.run(
        ["docker", "network", "ls", "-q", "--filter", f"label=com.docker.compose.project=sm-{job}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return listing.stdout.split()


def test_sigkill_to_defects_stops_its_container_and_the_job_resumes(
    tiny_photos: Path, training_image: str, tmp_path: Path
) -> None:
    run_dir = tmp_path / "runs" / "killed"
    process = _start(tmp_path, training_image, tiny_photos, "killed")
    wait_for_checkpoint(process, run_dir, 2)
    process.send_signal(signal.SIGKILL)  # No handler runs: only the watchdog is left.
    process.wait(timeout=60)
    # The container stops within its stop time (SIGTERM, then SIGKILL after 10 s).
    assert wait_until(lambda: not _containers("killed"), 30), _containers("killed")
    assert wait_until(lambda: not _networks("killed"), 10)
    # The compose file holds the containers' (dummy) credentials: it goes too.
    assert wait_until(lambda: not (run_dir / "sm-killed" / "docker-compose.yaml").exists(), 10)

    code, out, _ = run_cli("jobs", "--runs-dir", str(run_dir.parent), "--json")
    assert code == 0
    assert [job["status"] for job in json.loads(out)] == ["interrupted"]
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("DEFECTS_TRAINING_IMAGE", training_image)
        code, out, err = run_cli("train", "--resume", "killed", "--runs-dir", str(run_dir.parent))
    assert code == 0, err[-3000:]
    assert out.startswith("succeeded: job killed on local")
    history = json.loads((run_dir / "history.json").read_text())
    assert history["epoch"] == [1, 2, 3, 4]
    assert _containers("killed") == set()
