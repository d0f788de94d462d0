"""A tuning job's ranking: by the objective, and equal objectives by the validation loss."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defects.errors import DataError
from defects.tuning.record import Trial, TuningRecord, read
from defects.tuning.spec import TuningSpec, parse_range


def _record(objective: str, trials: list[Trial]) -> TuningRecord:
    spec = TuningSpec(ranges=(parse_range("batch_size=8,16"),), objective=objective)
    return TuningRecord("tune-1", "process", spec, {}, {}, trials=trials)


def _trial(number: int, objective: float, loss: float | None) -> Trial:
    return Trial(
        number, f"trial-{number}", {}, "completed", objective, [objective], validation_loss=loss
    )


def test_of_trials_with_the_same_objective_the_lower_validation_loss_is_best() -> None:
    record = _record("macro-f1", [_trial(1, 0.9, 0.40), _trial(2, 0.9, 0.25), _trial(3, 0.8, 0.1)])
    assert [t.number for t in record.ranked()] == [2, 1, 3]
    assert record.best().number == 2  # type: ignore[union-attr]


def test_a_better_objective_wins_whatever_its_loss() -> None:
    record = _record("macro-f1", [_trial(1, 0.8, 0.1), _trial(2, 0.9, 0.9)])
    assert record.best().number == 2  # type: ignore[union-attr]


def test_a_minimised_objective_ranks_lowest_first() -> None:
    record = _record("loss", [_trial(1, 0.5, 0.5), _trial(2, 0.3, 0.3), _trial(3, 0.4, 0.4)])
    assert [t.number for t in record.ranked()] == [2, 3, 1]


def test_a_trial_without_a_loss_ranks_after_an_equal_one_with_it() -> None:
    record = _record("macro-f1", [_trial(1, 0.9, None), _trial(2, 0.9, 0.6)])
    assert [t.number for t in record.ranked()] == [2, 1]


def test_a_record_written_before_the_loss_was_kept_still_reads(tmp_path: Path) -> None:
    record = _record("macro-f1", [_trial(1, 0.9, 0.4)])
    record.write(tmp_path)
    saved = json.loads((tmp_path / "tune.json").read_text())
    del saved["trials"][0]["validation_loss"]
    (tmp_path / "tune.json").write_text(json.dumps(saved))
    loaded = read(tmp_path)
    assert loaded.trials[0].validation_loss is None
    assert loaded.best().number == 1  # type: ignore[union-attr]


def test_a_damaged_tune_json_is_named_and_a_written_one_leaves_nothing_beside_it(
    tmp_path: Path,
) -> None:
    _record("macro-f1", [_trial(1, 0.5, 0.4)]).write(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tune.json"]
    assert read(tmp_path).trials[0].objective == 0.5
    for damage in ("[1]", '{"tuning_job_name": "x"}', json.dumps({"spec": 3})):
        (tmp_path / "tune.json").write_text(damage)
        with pytest.raises(DataError, match="tune.json is damaged") as caught:
            read(tmp_path)
        assert caught.value.headline == "a job file is damaged"
