"""A tuning job's ranking (by the objective, equal objectives by the validation loss), what
it cannot tell apart on a small validation split, and its plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from defects.errors import DataError
from defects.tuning.record import Trial, TuningRecord, plot, read
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


def _scored(objective: str, images: int, objectives: list[float]) -> TuningRecord:
    """Completed trials with these objectives, on a validation split of ``images`` images."""
    record = _record(objective, [_trial(n, o, 1.0) for n, o in enumerate(objectives, start=1)])
    record.data["validation_images"] = images
    for trial, size in zip(record.trials, [8, 16] * len(objectives), strict=False):
        trial.params = {"batch_size": size}
    return record


def test_trials_within_one_validation_image_of_each_other_are_not_told_apart(
    tmp_path: Path,
) -> None:
    # The README's old example: six trials at chance on 8 validation images.
    record = _scored("macro-f1", 8, [0.1, 0.1111, 0.1, 0.1, 0.1, 0.1])
    expected = (
        "All 6 completed trials score within one validation image's share (1/8 = 0.125) of "
        "each other: the validation split is too small to tell them apart"
    )
    assert len(record.warnings()) == 1 and record.warnings()[0].startswith(expected)
    record.write(tmp_path)
    assert json.loads((tmp_path / "tune.json").read_text())["warnings"] == record.warnings()


def test_trials_close_to_the_best_are_named(tmp_path: Path) -> None:
    record = _scored("accuracy", 40, [0.8, 0.79, 0.5, 0.78])
    assert record.warnings() == [
        "trial-2, trial-4 score within one validation image's share (1/40 = 0.025) of the "
        "best trial trial-1: the validation split is too small to tell them apart from it."
    ]
    record.trials[3].objective = 0.7
    assert record.warnings()[0].startswith("trial-2 scores within")


def test_a_best_trial_one_validation_image_ahead_or_more_has_no_warning() -> None:
    assert _scored("accuracy", 40, [0.825, 0.8, 0.5]).warnings() == []
    # The loss is no share of the split: there is no image's step to compare with.
    assert _scored("loss", 8, [0.5, 0.51]).warnings() == []


def test_the_warning_is_printed_with_the_results_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from defects.cli.tune_commands import _report

    record = _scored("macro-f1", 8, [0.1, 0.1111])
    record.status = "completed"
    _report(record, False, tmp_path)
    out = capsys.readouterr().out
    assert "warning: All 2 completed trials score within one validation image's share" in out
    assert out.index("trial-2 *") < out.index("warning: ") < out.index("best: trial trial-2")


def _plotted_axes(record: TuningRecord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    import matplotlib.pyplot as plt

    figures: list[Any] = []
    monkeypatch.setattr(plt, "close", figures.append)
    plot(record, tmp_path / "tune.png")
    return figures[0].axes[0]


def test_the_plot_shows_a_share_on_its_whole_scale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 0.100 and 0.111 on 8 images: a zoomed axis would make the noise look like a signal.
    axis = _plotted_axes(_scored("macro-f1", 8, [0.1, 0.1111]), tmp_path, monkeypatch)
    assert axis.get_ylim() == (0.0, 1.0)
    # The band of one validation image below the best.
    band = [p for p in axis.patches if p.get_label() == "within one validation image of the best"]
    assert len(band) == 1 and band[0].get_extents().height > 0


def test_the_plot_shows_a_loss_from_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    axis = _plotted_axes(_scored("loss", 8, [1.38, 1.39]), tmp_path, monkeypatch)
    low, high = axis.get_ylim()
    assert low == 0.0 and high >= 1.39
