"""Jobs on this machine: their names, their records (``runs/<job>/job.json``) and what a
finished or detached job gives back."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from defects.errors import ConfigError, DataError
from defects.training import contract

JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
RECORD_FILE = "job.json"


def new_job_name(prefix: str = "defects") -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{prefix}-{stamp}-{secrets.token_hex(2)}"


def check_job_name(name: str) -> str:
    if not JOB_NAME.match(name):
        raise ConfigError(
            f"{name!r} is not a valid job name.",
            hint="Use up to 63 letters, digits and hyphens, starting with a letter or digit.",
        )
    return name


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as error:
        raise DataError(
            f"{path} does not exist.",
            hint="Name a finished job's folder under runs/ (see `ls runs`).",
        ) from error
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not valid JSON: {error}.") from error


def write_record(run_dir: Path, record: dict[str, Any]) -> None:
    """Write ``job.json`` whole or not at all (a reader never sees half a record)."""
    path = run_dir / RECORD_FILE
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(record, indent=2))
    partial.replace(path)


def read_record(run_dir: Path) -> dict[str, Any]:
    """The job's record, or an empty one when it has none."""
    path = run_dir / RECORD_FILE
    return dict(load_json(path)) if path.is_file() else {}


@dataclass(frozen=True)
class DetachedJob:
    """A job started with ``--detach``: it runs on its own, its results come later."""

    job_name: str
    backend: str
    run_dir: Path

    def line(self) -> str:
        return (
            f"started: job {self.job_name} on {self.backend}, detached; "
            f"`defects history {self.job_name}` fetches its results into {self.run_dir} "
            "once it has finished"
        )


@dataclass(frozen=True)
class JobResult:
    """A finished job: where its artifacts are and what it measured."""

    job_name: str
    backend: str
    seconds: float
    run_dir: Path
    metrics: dict[str, Any]

    @property
    def history(self) -> dict[str, Any]:
        """The per-epoch history (``history.json``)."""
        return dict(load_json(self.run_dir / contract.HISTORY_FILE))

    @property
    def validation_accuracy(self) -> float:
        return float(self.metrics["validation"]["accuracy"])

    def line(self) -> str:
        minutes, seconds = divmod(round(self.seconds), 60)
        return (
            f"succeeded: job {self.job_name} on {self.backend} in {minutes}m{seconds:02d}s, "
            f"validation accuracy {self.validation_accuracy:.3f} "
            f"(macro-F1 {self.metrics['validation']['macro_f1']:.3f}), "
            f"artifacts in {self.run_dir}"
        )


# What ``run`` gives back: a finished job, or one that runs on its own.
RunResult = JobResult | DetachedJob
