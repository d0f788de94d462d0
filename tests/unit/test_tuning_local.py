"""Early stopping in the local search: when the median rule may stop a trial (no training)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from defects import backends
from defects.dataset.prepare import PreparedDataset
from defects.settings import resolve
from defects.training import metric_log
from defects.tuning import local, make_spec
from defects.tuning.local import LocalSearch, make_study
from defects.tuning.record import TuningRecord


class _AlwaysPrune:
    """An Optuna trial whose pruner would stop it at every step."""

    def report(self, value: float, step: int) -> None:
        pass

    def should_prune(self) -> bool:
        return True


def _watched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, epochs: int | str, lines: list[str]
) -> Any:
    """A trial of a search with early stopping, its log holding ``lines``, once watched."""
    spec = make_spec(["learning_rate=0.001:0.01"], strategy="random", early_stopping=True)
    record = TuningRecord("tune-1", "process", spec, {"epochs": epochs, "model": "scratch"}, {})
    # 40 training images in batches of 32: an `--epochs auto` run's cap is 200 epochs.
    dataset = PreparedDataset(tmp_path, {"counts": {"train": {"good": 40}}})
    backend = backends.create(resolve({"runs_dir": tmp_path / "runs"}))
    search = LocalSearch(backend, record, tmp_path / "runs" / "tune-1", None, {}, dataset)  # type: ignore[arg-type]
    item = search._start(make_study(spec, []), local.distributions(spec))
    item.optuna_trial = _AlwaysPrune()
    item.thread_id = 1
    monkeypatch.setattr(local, "_raise_in_thread", lambda thread_id: None)
    item.log_path.parent.mkdir(parents=True)
    item.log_path.write_text("".join(f"{line}\n" for line in lines))
    search._watch(item)
    return item


def _epoch(number: int) -> str:
    return metric_log.line(f"epoch={number}", {"val_accuracy": 0.25, "val_macro_f1": 0.1})


def test_a_trial_below_the_median_with_epochs_left_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = _watched(tmp_path, monkeypatch, 4, [_epoch(1), _epoch(2)])
    assert item.stop_reason == "stopped early (median rule) after 2 value(s) of the objective"


def test_a_trial_that_ran_all_its_epochs_is_never_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stopping it now would save no training and lose its evaluation and model.
    item = _watched(tmp_path, monkeypatch, 4, [_epoch(n) for n in range(1, 5)])
    assert item.trial.values == [0.1] * 4
    assert item.stop_reason is None


def test_a_trial_that_stopped_training_on_its_own_is_never_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --epochs auto: the entry point's own early stopping ended it after 3 of at most 200.
    final = metric_log.line("final", {"val_accuracy": 0.25, "val_macro_f1": 0.1})
    item = _watched(tmp_path, monkeypatch, "auto", [_epoch(1), _epoch(2), _epoch(3), final])
    assert item.epochs == 200
    assert item.stop_reason is None
