"""rm and gc: what they remove, what they keep, and that nothing outside runs/ and data/ goes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from defects.jobs.cleanup import drop_backend_copies, plan_gc
from tests.cli import run_cli
from tests.jobfolders import job_folder, prepared_dataset, synthetic_photos


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """runs/ with a completed job (its data kept) and a failed one; data/ with the used
    dataset and an unused prepared dataset and synthetic set."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    used = prepared_dataset(data, "used111", synthetic_photos(data, "n6-used"))
    prepared_dataset(data, "unused22", synthetic_photos(data, "n6-unused"))
    runs = tmp_path / "runs"
    job_folder(runs, "done", "completed", "2026-12-01T10:00:00+00:00", 0.9, used)
    job_folder(runs, "broken", "failed", "2026-12-01T11:00:00+00:00")
    return tmp_path


def _names(out: str) -> list[str]:
    return sorted(Path(item["path"]).name for item in json.loads(out)["items"])


def test_gc_removes_only_data_no_job_refers_to(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli("gc", "--yes", "--json")
    assert code == 0
    assert _names(out) == ["n6-unused", "unused22"]
    assert sorted(p.name for p in (work / "data" / "prepared").iterdir()) == ["used111"]
    assert sorted(p.name for p in (work / "data" / "synthetic").iterdir()) == ["n6-used"]


def test_gc_failed_also_removes_failed_jobs(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli("gc", "--failed", "--yes", "--json")
    assert code == 0
    assert _names(out) == ["broken", "n6-unused", "unused22"]
    assert not (work / "runs" / "broken").exists()
    assert (work / "runs" / "done").is_dir()


def test_gc_reports_sizes(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli("gc", "--dry-run", "--json")
    assert code == 0
    sizes = {Path(item["path"]).name: item["bytes"] for item in json.loads(out)["items"]}
    assert sizes["n6-unused"] == 2000
    assert sizes["unused22"] == 1000 + len(
        (work / "data/prepared/unused22/manifest.json").read_bytes()
    )
    assert (work / "data" / "prepared" / "unused22").is_dir()


def test_gc_without_a_terminal_or_yes_refuses(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli("gc")
    assert code == 1
    assert "there is no terminal to ask" in err
    assert (work / "data" / "prepared" / "unused22").is_dir()


def test_gc_never_follows_a_link_out_of_data(
    work: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "precious.txt").write_text("keep me")
    (work / "data" / "prepared" / "linked").symlink_to(outside)
    code, out, _ = run_cli("gc", "--yes", "--json")
    assert code == 0
    assert "linked" not in _names(out)
    assert (outside / "precious.txt").read_text() == "keep me"


def test_rm_removes_a_job_folder(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli("rm", "broken", "--yes")
    assert code == 0
    assert not (work / "runs" / "broken").exists()
    assert out.splitlines()[-1].startswith("Removed 1 item(s)")


def test_rm_latest_removes_the_newest_job(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run_cli("rm", "latest", "--yes")
    assert code == 0
    assert sorted(p.name for p in (work / "runs").iterdir()) == ["done"]


def test_rm_refuses_a_link_pointing_outside(
    work: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path_factory.mktemp("outside")
    (outside / "job.json").write_text("{}")
    (work / "runs" / "evil").symlink_to(outside)
    code, _, err = run_cli("rm", "evil", "--yes")
    assert code == 1
    assert "symbolic link" in err
    assert (outside / "job.json").read_text() == "{}"


def test_rm_refuses_a_folder_outside_runs(
    work: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path_factory.mktemp("elsewhere")
    (outside / "job.json").write_text("{}")
    code, _, err = run_cli("rm", str(outside), "--yes")
    assert code == 1
    assert "outside" in err
    assert outside.is_dir()


def test_rm_refuses_a_running_job(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record_path = work / "runs" / "done" / "job.json"
    record = json.loads(record_path.read_text())
    record.update(status="running", pid=os.getpid())
    record_path.write_text(json.dumps(record))
    code, _, err = run_cli("rm", "done", "--yes")
    assert code == 1
    assert "stop it first" in err.lower()
    assert record_path.is_file()


def test_fetched_job_drops_backend_copies_but_keeps_checkpoints(work: Path) -> None:
    run_dir = work / "runs" / "done"
    for sub in ("model", "output/data", "checkpoints"):
        (run_dir / "opt" / "ml" / sub).mkdir(parents=True)
        (run_dir / "opt" / "ml" / sub / "file").write_text("x")
    drop_backend_copies(run_dir)
    assert sorted(p.name for p in (run_dir / "opt" / "ml").iterdir()) == ["checkpoints"]


def test_gc_lists_backend_copies_of_a_fetched_job(work: Path) -> None:
    copy = work / "runs" / "done" / "opt" / "ml" / "model"
    copy.mkdir(parents=True)
    (copy / "model.keras").write_bytes(b"k" * 300)
    removals = plan_gc(work / "runs", work / "data")
    assert [(r.path, r.size) for r in removals if r.path == copy] == [(copy, 300)]


def test_gc_leaves_the_lock_files_of_data_folders(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from defects.dataset.folders import exclusive

    # A job preparing "used111" right now, and the lock of a finished preparation.
    with exclusive(work / "data" / "prepared" / "used111"):
        (work / "data" / "synthetic" / ".n6-used.lock").touch()
        os.utime(work / "data" / "synthetic" / ".n6-used.lock", (0, 0))
        code, out, _ = run_cli("gc", "--failed", "--dry-run", "--json")
    assert code == 0
    assert _names(out) == ["broken", "n6-unused", "unused22"]


def test_gc_failed_keeps_the_trials_of_a_tuning_job_that_have_a_model(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = work / "runs"
    # Stopped early by its tuner, with its model; failed before it saved one.
    job_folder(runs, "tune-1/trial-1", "stopped", "2026-12-01T12:00:00+00:00", 0.8)
    job_folder(runs, "tune-1/trial-2", "failed", "2026-12-01T12:05:00+00:00")
    code, out, _ = run_cli("gc", "--failed", "--yes", "--json")
    assert code == 0
    assert _names(out) == ["broken", "n6-unused", "trial-2", "unused22"]
    assert (runs / "tune-1" / "trial-1" / "model.tar.gz").is_file()
