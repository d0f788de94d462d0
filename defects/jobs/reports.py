"""What ``defects describe`` and ``defects compare`` say about jobs, as plain data made from
each job folder's records (``job.json``, ``metrics.json``, ``history.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from defects.dataset.manifest import load_manifest
from defects.errors import DataError
from defects.jobs.listing import job_info
from defects.jobs.records import LOG_FILE, RECORD_FILE, history_so_far, json_object, read_record
from defects.training import contract

# Files of a job folder worth pointing at, in the order a person looks at them.
ARTIFACTS = (
    "curves.png",
    "confusion.png",
    contract.METRICS_FILE,
    contract.HISTORY_FILE,
    "model",
    contract.MODEL_ARCHIVE,
    contract.OUTPUT_ARCHIVE,
    LOG_FILE,
    RECORD_FILE,
)


def _dataset(record: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {"id": record.get("dataset_id"), "root": record.get("dataset_root")}
    root = Path(str(record["dataset_root"])) if record.get("dataset_root") else None
    dataset = load_manifest(root) if root is not None and root.is_dir() else None
    if dataset is not None:
        summary.update(
            source=dataset.manifest.get("source"),
            classes=dataset.manifest.get("classes"),
            counts=dataset.counts,
            skipped=len(dataset.skipped),
        )
    elif root is not None:
        summary["note"] = "the prepared data is no longer on this machine"
    return summary


def _split_metrics(metrics: dict[str, Any], split: str) -> dict[str, Any] | None:
    scores = metrics.get(split)
    if not isinstance(scores, dict):
        return None
    return {
        "accuracy": scores.get("accuracy"),
        "macro_f1": scores.get("macro_f1"),
        "recall": {
            name: values.get("recall") for name, values in (scores.get("per_class") or {}).items()
        },
        "count": scores.get("count"),
    }


def _history(run_dir: Path) -> dict[str, Any]:
    """``history.json``, or the epochs so far of a job training or stopped on this machine."""
    return history_so_far(run_dir) or json_object(run_dir / contract.HISTORY_FILE)


def describe_job(run_dir: Path, runs_dir: Path) -> dict[str, Any]:
    """Everything the records say about one job."""
    if not (run_dir / RECORD_FILE).is_file():
        raise DataError(
            f"{run_dir} holds no {RECORD_FILE}: it is not a job folder.",
            hint="See `defects jobs` for the jobs there are.",
        )
    record = read_record(run_dir)
    info = job_info(run_dir, runs_dir)
    metrics = json_object(run_dir / contract.METRICS_FILE)
    history = _history(run_dir)
    details = dict(record.get("details") or {})
    folder = run_dir.resolve()
    timings = {
        "seconds": info.seconds,
        "entry_point_seconds": details.get("entry_point_seconds"),
        "fit_seconds": metrics.get("fit_seconds"),
        "training_time_in_seconds": details.get("training_time_in_seconds"),
        "billable_time_in_seconds": details.get("billable_time_in_seconds"),
    }
    return {
        "name": info.name,
        "job_name": record.get("job_name", run_dir.name),
        "status": info.status,
        "backend": info.backend,
        "started": info.started,
        "process": {"pid": record.get("pid"), "host": record.get("host")},
        "hyperparameters": record.get("hyperparameters") or {},
        "dataset": _dataset(record),
        "image": details.get("image"),
        "instance_type": details.get("instance_type"),
        "timings": {name: value for name, value in timings.items() if value is not None},
        "epochs_run": len(history.get("loss") or []),
        "metrics": {
            split: found
            for split in ("validation", "test")
            if (found := _split_metrics(metrics, split)) is not None
        },
        "artifacts": {
            "folder": str(folder),
            **{name: str(folder / name) for name in ARTIFACTS if (folder / name).exists()},
        },
        "s3": {
            "bucket": record.get("bucket"),
            "prefix": record.get("prefix"),
            "output": record.get("output_uri"),
            "model": record.get("model_uri"),
            "channels": record.get("channels") or {},
        },
        "failure": record.get("error"),
    }


def _flat(value: object) -> object:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else value


def compare_jobs(run_dirs: list[Path], runs_dir: Path) -> dict[str, Any]:
    """The jobs' metrics side by side, the hyperparameters that differ between them, and
    their histories (for the figure)."""
    names: list[str] = []
    rows: dict[str, dict[str, Any]] = {}
    parameters: dict[str, dict[str, Any]] = {}
    histories: dict[str, dict[str, Any]] = {}
    for run_dir in run_dirs:
        described = describe_job(run_dir, runs_dir)
        name = described["name"]
        names.append(name)
        validation = described["metrics"].get("validation") or {}
        test = described["metrics"].get("test") or {}
        rows[name] = {
            "status": described["status"],
            "backend": described["backend"],
            "validation_accuracy": validation.get("accuracy"),
            "validation_macro_f1": validation.get("macro_f1"),
            "test_accuracy": test.get("accuracy"),
            "test_macro_f1": test.get("macro_f1"),
            "lowest_validation_recall": min(validation.get("recall", {}).values(), default=None),
            "epochs_run": described["epochs_run"],
            "fit_seconds": described["timings"].get("fit_seconds"),
            "seconds": described["timings"].get("seconds"),
            "dataset_id": described["dataset"]["id"],
        }
        parameters[name] = described["hyperparameters"]
        histories[name] = _history(run_dir)
    keys = sorted({key for values in parameters.values() for key in values})
    differing = {
        key: {name: parameters[name].get(key) for name in names}
        for key in keys
        if len({str(_flat(parameters[name].get(key))) for name in names}) > 1
    }
    return {
        "jobs": names,
        "metrics": rows,
        "differing_hyperparameters": differing,
        "histories": histories,
    }
