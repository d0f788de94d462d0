"""A job whose command died: what it started stops itself or is stopped, and every listing
says what still runs (no training, no Docker: the docker command is a stand-in here)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from defects.jobs import containers
from defects.jobs.records import read_record, true_status
from tests.cli import run_cli
from tests.jobfolders import dead_pid, job_folder

STARTED = "2026-12-01T10:00:00+00:00"


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process that runs until stopped, standing in for an entry point."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait()


def _orphan(runs: Path, name: str, entry_point: subprocess.Popen[bytes]) -> Path:
    run_dir = job_folder(runs, name, "running", STARTED)
    containers.note(run_dir, entry_point=containers.process(entry_point.pid))
    return run_dir


def test_a_job_whose_entry_point_outlived_its_command_is_orphaned_not_interrupted(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    run_dir = _orphan(tmp_path / "runs", "k1", sleeper)
    assert true_status(read_record(run_dir), run_dir) == "orphaned"
    code, out, _ = run_cli("jobs", "--runs-dir", str(tmp_path / "runs"), "--json")
    assert code == 0
    assert [job["status"] for job in json.loads(out)] == ["orphaned"]


def test_once_the_entry_point_has_ended_the_job_is_interrupted(tmp_path: Path) -> None:
    run_dir = job_folder(tmp_path / "runs", "k2", "running", STARTED)
    containers.note(run_dir, entry_point={**containers.process(os.getpid()), "pid": dead_pid()})
    assert true_status(read_record(run_dir), run_dir) == "interrupted"


def test_a_reused_pid_is_not_the_entry_point(tmp_path: Path) -> None:
    run_dir = job_folder(tmp_path / "runs", "k3", "running", STARTED)
    # This very process, but started at another moment: another process with the same pid.
    me = containers.process(os.getpid())
    containers.note(run_dir, entry_point={**me, "ticks": (me["ticks"] or 0) + 1})
    assert true_status(read_record(run_dir), run_dir) == "interrupted"


def test_stop_stops_the_orphaned_entry_point(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    _orphan(tmp_path / "runs", "k4", sleeper)
    code, out, _ = run_cli("stop", "k4", "--runs-dir", str(tmp_path / "runs"))
    assert code == 0
    assert "its entry point still runs" in out
    assert sleeper.wait(timeout=10) == -signal.SIGTERM


def test_resume_refuses_a_job_whose_entry_point_still_runs(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    _orphan(tmp_path / "runs", "k5", sleeper)
    code, _, err = run_cli("train", "--resume", "k5", "--runs-dir", str(tmp_path / "runs"))
    assert code == 2
    assert "the job is still running" in err
    assert f"its entry point still runs (pid {sleeper.pid})" in " ".join(err.split())
    assert "defects stop k5" in err
    assert sleeper.poll() is None


def test_rm_keeps_an_orphaned_job_without_force(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    run_dir = _orphan(tmp_path / "runs", "k6", sleeper)
    code, _, err = run_cli("rm", "k6", "--yes", "--runs-dir", str(tmp_path / "runs"))
    assert code == 1
    assert "is orphaned" in err
    assert run_dir.is_dir()


def _fake_docker(folder: Path, running: str = "") -> Path:
    """A docker command that records its arguments and lists ``running`` as containers."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "docker"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import sys
            with open({str(folder / "calls")!r}, "a") as calls:
                calls.write(" ".join(sys.argv[1:]) + "\\n")
            if sys.argv[1:3] == ["ps", "-aq"] or sys.argv[1:3] == ["ps", "-q"]:
                print({running!r})
            """
        )
    )
    script.chmod(0o755)
    return folder


def test_the_watchdog_stops_the_project_when_the_command_is_killed(tmp_path: Path) -> None:
    docker = _fake_docker(tmp_path / "bin", running="c0ffee")
    compose_file = tmp_path / "docker-compose.yaml"
    compose_file.write_text("services: {}\n")
    command = textwrap.dedent(
        f"""\
        import time
        from pathlib import Path
        from defects.backends.watchdog import Watchdog
        with Watchdog("sm-k7", [Path({str(compose_file)!r})]):
            print("watching", flush=True)
            time.sleep(120)
        """
    )
    environment = {**os.environ, "PATH": f"{docker}:{os.environ['PATH']}"}
    process = subprocess.Popen(
        [sys.executable, "-c", command], env=environment, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "watching\n"
    process.kill()
    process.wait()
    deadline = time.monotonic() + 30
    while compose_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    calls = (docker / "calls").read_text().splitlines()
    assert not compose_file.exists()
    assert f"ps -aq --filter label={containers.PROJECT_LABEL}=sm-k7" in calls
    assert "stop --time 10 c0ffee" in calls and "rm -f c0ffee" in calls


def test_the_watchdog_leaves_when_the_job_ends(tmp_path: Path) -> None:
    docker = _fake_docker(tmp_path / "bin")
    compose_file = tmp_path / "docker-compose.yaml"
    compose_file.write_text("services: {}\n")
    command = textwrap.dedent(
        f"""\
        from pathlib import Path
        from defects.backends.watchdog import Watchdog
        with Watchdog("sm-k8", [Path({str(compose_file)!r})]):
            pass
        """
    )
    environment = {**os.environ, "PATH": f"{docker}:{os.environ['PATH']}"}
    subprocess.run([sys.executable, "-c", command], env=environment, check=True, timeout=60)
    time.sleep(0.5)
    assert compose_file.exists()
    assert not (docker / "calls").exists()


def test_an_entry_point_stops_itself_when_its_parent_is_killed(tmp_path: Path) -> None:
    stopped = tmp_path / "stopped"
    entry_point = textwrap.dedent(
        f"""\
        import time
        from pathlib import Path
        from defects.training import interruption
        interruption.install()
        interruption.watch_parent(0.1)
        try:
            time.sleep(120)
        except interruption.Interrupted as error:
            Path({str(stopped)!r}).write_text(str(error))
        """
    )
    parent = textwrap.dedent(
        f"""\
        import os, subprocess, sys, time
        environment = {{**os.environ, "DEFECTS_PARENT_PID": str(os.getpid())}}
        subprocess.Popen([sys.executable, "-c", {entry_point!r}], env=environment)
        print("started", flush=True)
        time.sleep(120)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert process.stdout is not None and process.stdout.readline() == "started\n"
    time.sleep(1)  # The entry point has started its watch.
    process.kill()
    process.wait()
    deadline = time.monotonic() + 20
    while not stopped.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stopped.read_text() == "SIGTERM"


def test_rm_force_stops_what_still_runs_and_then_removes_the_folder(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    run_dir = _orphan(tmp_path / "runs", "k9", sleeper)
    code, _, _ = run_cli("rm", "k9", "--dry-run", "--force", "--runs-dir", str(tmp_path / "runs"))
    assert code == 0 and sleeper.poll() is None and run_dir.is_dir()
    code, _, err = run_cli("rm", "k9", "--yes", "--force", "--runs-dir", str(tmp_path / "runs"))
    assert code == 0, err
    assert sleeper.wait(timeout=10) == -signal.SIGTERM
    assert not run_dir.exists()


def test_jobs_removes_the_stopped_containers_a_killed_command_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker = _fake_docker(tmp_path / "bin", running="")
    run_dir = job_folder(tmp_path / "runs", "k10", "running", STARTED)
    containers.note(run_dir, compose_project="sm-k10")
    script = docker / "docker"
    # Stopped containers are listed by `ps -aq`, none by `ps -q`.
    script.write_text(
        script.read_text()
        .replace(
            'if sys.argv[1:3] == ["ps", "-aq"] or sys.argv[1:3] == ["ps", "-q"]:',
            'if sys.argv[1:3] == ["ps", "-aq"]:',
        )
        .replace("print('')", "print('dead1')")
    )
    monkeypatch.setenv("PATH", f"{docker}:{os.environ['PATH']}")
    code, out, _ = run_cli("jobs", "--runs-dir", str(tmp_path / "runs"), "--json")
    assert code == 0
    assert [job["status"] for job in json.loads(out)] == ["interrupted"]
    calls = (docker / "calls").read_text().splitlines()
    assert "rm -f dead1" in calls
    assert not (run_dir / containers.CHILDREN_FILE).exists()
