"""Tuning specs: ranges checked by the hyperparameter schema before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from defects.dataset.manifest import PreparedDataset
from defects.errors import ConfigError
from defects.training import contract
from defects.tuning.driver import costliest
from defects.tuning.spec import Range, TuningSpec, make_spec, parse_range


def test_two_numbers_of_a_float_hyperparameter_are_a_continuous_range() -> None:
    assert parse_range("learning_rate=0.0001:0.01") == Range(
        "learning_rate", "continuous", low=0.0001, high=0.01
    )


def test_log_asks_for_a_log_scale() -> None:
    assert parse_range("learning_rate=0.0001:0.01:log").log is True


def test_two_integers_of_an_integer_hyperparameter_are_an_integer_range() -> None:
    assert parse_range("epochs=2:8") == Range("epochs", "integer", low=2, high=8)


def test_listed_values_are_categorical_and_typed_by_the_schema() -> None:
    assert parse_range("batch-size=8,16,32") == Range(
        "batch_size", "categorical", values=(8, 16, 32)
    )


def test_listed_image_sizes_are_normalised() -> None:
    assert parse_range("image_size=40x24,64").values == ("40x24", "64")


def test_a_value_outside_the_schema_bounds_is_refused() -> None:
    with pytest.raises(ConfigError, match="learning_rate is 2: it must be > 0 and < 1"):
        parse_range("learning_rate=0.001:2")


def test_a_fractional_end_of_an_integer_hyperparameter_is_refused() -> None:
    with pytest.raises(ConfigError, match="epochs is '1.5': expected an integer"):
        parse_range("epochs=1.5:4")


def test_an_unknown_hyperparameter_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown hyperparameter 'dropout'"):
        parse_range("dropout=0.1:0.5")


def test_a_reversed_range_is_refused() -> None:
    with pytest.raises(ConfigError, match="the low end 8 must be below the high end 2"):
        parse_range("epochs=8:2")


def test_a_text_hyperparameter_cannot_have_a_numeric_range() -> None:
    with pytest.raises(ConfigError, match="model is not a number; list its values as A,B,C"):
        parse_range("model=1:2")


def test_a_single_value_is_no_search() -> None:
    with pytest.raises(ConfigError, match="a search needs at least two values"):
        parse_range("batch_size=8")


def test_a_grid_search_runs_every_combination() -> None:
    spec = make_spec(["batch_size=8,16", "model=default,article"], strategy="grid")
    assert spec.max_jobs == 4


def test_a_grid_search_refuses_a_numeric_range() -> None:
    with pytest.raises(ConfigError, match="learning_rate is a LOW:HIGH range"):
        make_spec(["learning_rate=0.001:0.01"], strategy="grid")


def test_a_search_needs_a_range() -> None:
    with pytest.raises(ConfigError, match="at least one searched hyperparameter"):
        make_spec([])


def test_the_command_line_wins_over_the_spec_file(tmp_path: Path) -> None:
    spec_file = tmp_path / "tune.toml"
    spec_file.write_text(
        'strategy = "random"\nmax_jobs = 4\nseed = 7\n'
        '[ranges]\nbatch_size = [8, 16]\nepochs = "1:3"\n'
    )
    spec = make_spec(["epochs=2:5"], max_jobs=6, spec_file=spec_file, default_seed=0)
    assert (spec.strategy, spec.max_jobs, spec.seed) == ("random", 6, 7)
    assert [item.text() for item in spec.ranges] == ["batch_size=8,16", "epochs=2:5"]


def test_a_spec_file_value_of_the_wrong_type_is_refused(tmp_path: Path) -> None:
    spec_file = tmp_path / "tune.toml"
    spec_file.write_text('max_jobs = "six"\n[ranges]\nepochs = "1:3"\n')
    with pytest.raises(ConfigError, match="max_jobs is 'six': expected int"):
        make_spec([], spec_file=spec_file)


def test_the_loss_objective_is_minimised() -> None:
    spec = make_spec(["epochs=1:3"], objective="loss")
    assert (spec.objective_metric, spec.objective_type) == ("validation:loss", "Minimize")


def test_a_spec_survives_its_record() -> None:
    spec = make_spec(["learning_rate=0.0001:0.01:log", "batch_size=8,16"], max_jobs=3, seed=2)
    assert type(spec).from_dict(spec.to_dict()) == spec


def test_the_command_line_offers_the_objectives_and_strategies_of_the_spec() -> None:
    from defects.cli import tune_commands
    from defects.tuning import spec

    assert tuple(spec.OBJECTIVES) == tune_commands.OBJECTIVES
    assert tuple(spec.STRATEGIES) == tune_commands.STRATEGIES


def _photos_dataset(width: int, height: int) -> PreparedDataset:
    files = [{"path": "train/a/x.png", "split": "train", "width": width, "height": height}]
    return PreparedDataset(Path("."), {"dataset_id": "x", "files": files})


def test_the_costliest_trials_take_the_most_epochs_and_auto() -> None:
    fixed = {**contract.hyperparameter_defaults(), "epochs": 5, "model": "scratch"}
    spec = TuningSpec(ranges=(parse_range("epochs=20,auto,8"), parse_range("batch_size=8,32")))
    found = costliest(spec, fixed, _photos_dataset(1920, 1080))
    assert sorted((str(c["epochs"]), c["batch_size"]) for c in found) == [
        ("20", 8),
        ("20", 32),
        ("auto", 8),
        ("auto", 32),
    ]
    # Priced as the entry point will train it: at the size auto chooses for these photos.
    assert {c["image_size"] for c in found} == {"384x216"}


def test_the_costliest_trial_of_an_integer_range_is_its_high_end() -> None:
    spec = TuningSpec(ranges=(parse_range("epochs=2:8"),))
    found = costliest(spec, contract.hyperparameter_defaults(), _photos_dataset(64, 64))
    assert [(c["epochs"], c["image_size"]) for c in found] == [(8, "64")]


def test_a_spec_file_that_is_not_text_is_a_clear_error(tmp_path: Path) -> None:
    from defects.errors import ConfigError
    from defects.tuning.spec import load_spec_file

    spec = tmp_path / "spec.toml"
    spec.write_bytes(b"\xff\xfe[ranges]")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_spec_file(spec)
