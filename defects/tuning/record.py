"""A tuning job's record, ``runs/<tuning-job>/tune.json``: its spec, the fixed
hyperparameters, where its data came from, and every trial with its objective. Each trial is
also an ordinary job with its own folder and ``job.json`` beside it.

Trial states: ``running``, ``completed``, ``stopped`` (early stopping), ``failed`` and
``interrupted`` (the tuning job was; ``--resume`` runs new trials in their place).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from defects.errors import DataError
from defects.jobs.records import (
    DAMAGED_FILE_HEADLINE,
    TUNE_FILE,
    load_json,
    read_record,
    write_json,
    write_record,
)
from defects.training.contract import HyperparameterValue
from defects.tuning.spec import TuningSpec

PLOT_FILE = "tune.png"
BEST_DIR = "best"
# Trial states that count against --max-jobs (as SageMaker counts them).
FINISHED = ("completed", "stopped", "failed")
# Of trials with the same objective, the one with the lower final value of this ranks first.
TIE_BREAK_METRIC = "validation:loss"
# Objectives that are shares of the validation split, from 0 to 1: one image more or less
# right moves accuracy by 1/n of n images (macro-F1 by about as much), so smaller differences
# between trials are not measured. The loss has no such step.
SHARES = ("accuracy", "macro-f1")


@dataclass
class Trial:
    number: int
    name: str
    params: dict[str, HyperparameterValue]
    state: str = "running"
    objective: float | None = None
    # The objective's values in the order the log gave them (one per epoch, then the final).
    values: list[float] = field(default_factory=list)
    seconds: float | None = None
    error: str | None = None
    # When it started and ended on this machine (seconds since the epoch).
    started_at: float | None = None
    ended_at: float | None = None
    # The final validation loss its log gave: of trials with the same objective, the one
    # with the lower loss ranks first (as the entry point keeps the epoch).
    validation_loss: float | None = None


@dataclass
class TuningRecord:
    name: str
    backend: str
    spec: TuningSpec
    fixed: dict[str, HyperparameterValue]
    # How the data was given (data, per_class, classes) and the prepared dataset's folder.
    data: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)
    status: str = "running"
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    details: dict[str, Any] = field(default_factory=dict)

    def finished(self) -> list[Trial]:
        return [trial for trial in self.trials if trial.state in FINISHED]

    def ranked(self) -> list[Trial]:
        """Trials with an objective, best first; then the others in their order. Equal
        objectives, common on a small validation split, go by the lower validation loss."""
        scored = [t for t in self.trials if t.objective is not None and math.isfinite(t.objective)]
        sign = -1.0 if self.spec.maximize else 1.0

        def rank(trial: Trial) -> tuple[float, float]:
            loss = trial.validation_loss
            tie = loss if loss is not None and math.isfinite(loss) else math.inf
            return (sign * (trial.objective or 0.0), tie)

        scored.sort(key=rank)
        return scored + [t for t in self.trials if t not in scored]

    def best(self) -> Trial | None:
        """The best completed trial (a stopped one never is: it did not finish training)."""
        completed = [t for t in self.ranked() if t.state == "completed" and t.objective is not None]
        return completed[0] if completed else None

    def resolution(self) -> float | None:
        """One validation image's share of the split (1/n), for an objective that is a share."""
        count = self.data.get("validation_images")
        if self.spec.objective not in SHARES or not isinstance(count, int) or count < 1:
            return None
        return 1 / count

    def warnings(self) -> list[str]:
        """What the results cannot tell: completed trials within one validation image's share
        of the best are not told apart from it, whatever the ranking says."""
        step, best = self.resolution(), self.best()
        if step is None or best is None or best.objective is None:
            return []
        others = [t for t in self.ranked() if t.state == "completed" and t is not best]
        close = [t for t in others if abs((t.objective or 0.0) - best.objective) < step - 1e-9]
        if not close:
            return []
        share = f"one validation image's share (1/{self.data['validation_images']} = {step:.3f})"
        if len(close) == len(others):
            return [
                f"All {len(others) + 1} completed trials score within {share} of each other: "
                "the validation split is too small to tell them apart, and the best is no "
                "better than the others. Give the search more images (--per-class, or more "
                "photos in --data)."
            ]
        names = ", ".join(t.name for t in close)
        verb, them = ("scores", "it") if len(close) == 1 else ("score", "them")
        return [
            f"{names} {verb} within {share} of the best trial {best.name}: the validation "
            f"split is too small to tell {them} apart from it."
        ]

    def next_number(self) -> int:
        return max((trial.number for trial in self.trials), default=0) + 1

    def to_dict(self) -> dict[str, Any]:
        best = self.best()
        return {
            "tuning_job_name": self.name,
            "backend": self.backend,
            "status": self.status,
            "started": self.started,
            "spec": self.spec.to_dict(),
            "fixed_hyperparameters": self.fixed,
            "data": self.data,
            "best_trial": best.name if best else None,
            "best_hyperparameters": best.params if best else None,
            "best_objective": best.objective if best else None,
            "warnings": self.warnings(),
            "trials": [asdict(trial) for trial in self.trials],
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> TuningRecord:
        return cls(
            name=record["tuning_job_name"],
            backend=record["backend"],
            spec=TuningSpec.from_dict(record["spec"]),
            fixed=dict(record["fixed_hyperparameters"]),
            data=dict(record["data"]),
            trials=[Trial(**trial) for trial in record["trials"]],
            status=record["status"],
            started=record["started"],
            details=dict(record.get("details", {})),
        )

    def write(self, tuning_dir: Path) -> None:
        """Write ``tune.json`` whole or not at all."""
        tuning_dir.mkdir(parents=True, exist_ok=True)
        write_json(tuning_dir / TUNE_FILE, self.to_dict())


def read(tuning_dir: Path) -> TuningRecord:
    path = tuning_dir / TUNE_FILE
    try:
        return TuningRecord.from_dict(dict(load_json(path)))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise DataError(
            f"{path} is damaged: {type(error).__name__} {error}.",
            hint="It is the tuning job's record, written by `defects tune`; each trial's own "
            "folder beside it still holds that trial's job.json and results.",
            headline=DAMAGED_FILE_HEADLINE,
        ) from error


def mark_trial_job(run_dir: Path, tuning_job: str, trial: Trial) -> None:
    """Add the tuning job and the trial's outcome to the trial's own ``job.json``, so that a
    stopped or interrupted trial says so there too."""
    record = read_record(run_dir)
    if not record:
        return
    record["tuning_job"] = tuning_job
    record["trial"] = trial.number
    if trial.state in {"stopped", "interrupted"}:
        record["status"] = trial.state
        record["error"] = trial.error
    write_record(run_dir, record)


def table_rows(record: TuningRecord) -> list[list[str]]:
    """The trials as rows of text, best first: rank, trial, state, objective, values."""
    rows = []
    best = record.best()
    for rank, trial in enumerate(record.ranked(), start=1):
        objective = "-" if trial.objective is None else f"{trial.objective:.4f}"
        marker = " *" if best is not None and trial.name == best.name else ""
        rows.append(
            [
                str(rank),
                trial.name + marker,
                trial.state,
                objective,
                *(_text(trial.params.get(name)) for name in record.spec.searched),
            ]
        )
    return rows


def _text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def plot(record: TuningRecord, path: Path) -> Path:
    """``tune.png``: the objective against each searched hyperparameter, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranges = record.spec.ranges
    figure, axes = plt.subplots(1, len(ranges), figsize=(4.2 * len(ranges), 3.6), squeeze=False)
    best = record.best()
    for axis, searched in zip(axes[0], ranges, strict=True):
        scored = [t for t in record.trials if t.objective is not None]
        categorical = searched.kind == "categorical"
        labels = [str(value) for value in searched.values]

        def position(
            trial: Trial,
            name: str = searched.name,
            labels: list[str] = labels,
            categorical: bool = categorical,
        ) -> Any:
            value = trial.params.get(name)
            return labels.index(str(value)) if categorical else value

        for state, marker in (("completed", "o"), ("stopped", "x")):
            chosen = [t for t in scored if t.state == state]
            axis.scatter(
                [position(t) for t in chosen],
                [t.objective for t in chosen],
                marker=marker,
                label=state,
            )
        if best is not None:
            axis.scatter(
                [position(best)],
                [best.objective],
                s=160,
                facecolors="none",
                edgecolors="red",
                label="best",
            )
        _objective_axis(axis, record, best)
        if categorical:
            axis.set_xticks(range(len(labels)), labels)
        elif searched.log and scored:
            axis.set_xscale("log")
        axis.set_xlabel(searched.name)
        axis.set_ylabel(record.spec.objective_metric)
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    figure.suptitle(f"{record.name} ({record.spec.strategy}, {len(record.trials)} trials)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _objective_axis(axis: Any, record: TuningRecord, best: Trial | None) -> None:
    """The objective on its whole scale, so that the plot shows differences at their size and
    invents none: a share (accuracy, macro-F1) from 0 to 1, with the band of one validation
    image below the best (trials in it are not told apart from it); a loss from 0 up."""
    step = record.resolution()
    if record.spec.objective in SHARES:
        axis.set_ylim(0.0, 1.0)
        if step is not None and best is not None and best.objective is not None:
            axis.axhspan(
                best.objective - step,
                best.objective,
                color="red",
                alpha=0.1,
                label="within one validation image of the best",
            )
    else:
        axis.set_ylim(bottom=0.0)
