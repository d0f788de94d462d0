"""Job folders as the tool leaves them, written by the tests (no training)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

CLASSES = ["good", "oil", "scratch", "stain"]


def dead_pid() -> int:
    """The id of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def metrics(accuracy: float, test_accuracy: float | None = None) -> dict[str, Any]:
    def split(value: float) -> dict[str, Any]:
        return {
            "accuracy": value,
            "macro_f1": round(value - 0.05, 3),
            "count": 4,
            "class_names": CLASSES,
            "confusion_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
            "per_class": {
                name: {"precision": 1.0, "recall": value, "f1": 1.0, "support": 1}
                for name in CLASSES
            },
        }

    found: dict[str, Any] = {
        "image_size": "40x24",
        "fit_seconds": 3.5,
        "validation": split(accuracy),
    }
    if test_accuracy is not None:
        found["test"] = split(test_accuracy)
    return found


def prepared_dataset(data_dir: Path, dataset_id: str, source: Path) -> Path:
    root = data_dir / "prepared" / dataset_id
    (root / "train" / "good").mkdir(parents=True)
    (root / "train" / "good" / "0001.png").write_bytes(b"x" * 1000)
    manifest = {
        "format": 1,
        "dataset_id": dataset_id,
        "source": str(source),
        "classes": CLASSES,
        "counts": {"train": {"good": 1}, "validation": {}, "test": {}},
        "skipped": [],
        "files": [],
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def synthetic_photos(data_dir: Path, name: str) -> Path:
    root = data_dir / "synthetic" / name
    (root / "good").mkdir(parents=True)
    (root / "good" / "0001.png").write_bytes(b"y" * 2000)
    (root / ".complete").touch()
    return root


def job_folder(
    runs_dir: Path,
    name: str,
    status: str,
    started: str,
    accuracy: float | None = None,
    dataset_root: Path | None = None,
    **record: Any,
) -> Path:
    run_dir = runs_dir / name
    run_dir.mkdir(parents=True)
    full = {
        "job_name": run_dir.name,
        "backend": "process",
        "bucket": "defects",
        "prefix": "defects",
        "hyperparameters": {"epochs": 2, "batch_size": 8, "image_size": "40x24", "seed": 0},
        "channels": {"train": "s3://defects/defects/datasets/abc/train"},
        "output_uri": f"s3://defects/defects/jobs/{run_dir.name}/output",
        "dataset_id": dataset_root.name if dataset_root else None,
        "dataset_root": str(dataset_root.resolve()) if dataset_root else None,
        "started": started,
        "status": status,
        "pid": dead_pid(),
        "host": socket.gethostname(),
        "seconds": 12.5,
        **record,
    }
    (run_dir / "job.json").write_text(json.dumps(full))
    (run_dir / "job.log").write_text("Hyperparameters: --epochs 2\n")
    if accuracy is not None:
        (run_dir / "metrics.json").write_text(json.dumps(metrics(accuracy, accuracy - 0.1)))
        history = {
            "epoch": [1, 2],
            "loss": [1.2, 0.8],
            "accuracy": [0.5, 0.7],
            "val_loss": [1.1, 0.9],
            "val_accuracy": [0.5, accuracy],
        }
        (run_dir / "history.json").write_text(json.dumps(history))
        (run_dir / "model").mkdir()
        (run_dir / "model" / "model.keras").write_bytes(b"m" * 500)
        (run_dir / "model.tar.gz").write_bytes(b"a" * 400)
        (run_dir / "output.tar.gz").write_bytes(b"o" * 100)
    return run_dir


def sample_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A runs/ folder with a completed, a failed, an interrupted and a nested (tuning) job."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    dataset = prepared_dataset(data, "abc123", synthetic_photos(data, "n6"))
    runs_dir = tmp_path / "runs"
    job_folder(runs_dir, "done", "completed", "2026-12-01T10:00:00+00:00", 0.9, dataset)
    job_folder(runs_dir, "broken", "failed", "2026-12-01T11:00:00+00:00", error="out of memory")
    job_folder(runs_dir, "gone", "running", "2026-12-01T12:00:00+00:00")
    job_folder(
        runs_dir,
        "tune-1/trial-1",
        "completed",
        "2026-12-01T09:00:00+00:00",
        0.8,
        hyperparameters={"epochs": 4, "batch_size": 8, "image_size": "40x24", "seed": 0},
    )
    return runs_dir
