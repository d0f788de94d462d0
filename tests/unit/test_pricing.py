"""The estimate before a paid job: measured throughput, the price table, spot, trials."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from defects.backends.base import CloudOptions
from defects.backends.cloud import SageMakerBackend
from defects.backends.process import ProcessBackend
from defects.dataset.manifest import PreparedDataset
from defects.errors import NotConfirmed
from defects.pipeline import pricing
from defects.settings import resolve
from defects.training import contract

SETTINGS: dict[str, Any] = {**contract.hyperparameter_defaults(), "epochs": 10}
# 100 training images x 10 epochs at 50 img/s here, 4x on ml.g4dn.xlarge: 5 s, + 180 s.
EXPECTED_SECONDS = 185.0
G4DN_PRICE = 0.736


def _finished_job(runs: Path, name: str, speed: float, **record: Any) -> None:
    folder = runs / name
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps({"hyperparameters": SETTINGS, **record}))
    (folder / "metrics.json").write_text(json.dumps({"train_images_per_second": speed}))


def _dataset() -> PreparedDataset:
    return PreparedDataset(Path("."), {"counts": {"train": {"oil": 60, "stain": 40}}})


def _estimate(runs: Path, jobs: int = 1, **options: Any) -> pricing.Estimate:
    backend = SageMakerBackend(resolve({"runs_dir": runs}, environ={}))
    return pricing.estimate(backend, _dataset(), [SETTINGS], CloudOptions(**options), jobs)


def test_a_local_measurement_is_scaled_for_the_instance_type(tmp_path: Path) -> None:
    _finished_job(tmp_path, "here", 50.0, backend="process")
    found = _estimate(tmp_path)
    assert found.seconds_per_job == EXPECTED_SECONDS
    assert found.expected_usd() == pytest.approx(EXPECTED_SECONDS / 3600 * G4DN_PRICE)


def test_a_cloud_measurement_of_the_same_instance_type_is_taken_as_it_is(tmp_path: Path) -> None:
    _finished_job(
        tmp_path, "cloud", 200.0, backend="sagemaker", details={"instance_type": "ml.g4dn.xlarge"}
    )
    assert _estimate(tmp_path).seconds_per_job == EXPECTED_SECONDS


def test_spot_assumes_the_typical_saving(tmp_path: Path) -> None:
    _finished_job(tmp_path, "here", 50.0, backend="process")
    found = _estimate(tmp_path, spot=True)
    assert found.expected_usd() == pytest.approx(EXPECTED_SECONDS / 3600 * G4DN_PRICE * 0.3)
    assert "with --spot about $0.01 (assuming the typical 70% saving" in "\n".join(found.lines())


def test_a_tuning_job_costs_its_number_of_trials(tmp_path: Path) -> None:
    _finished_job(tmp_path, "here", 50.0, backend="process")
    one, six = _estimate(tmp_path), _estimate(tmp_path, jobs=6)
    assert six.expected_usd() == pytest.approx(6 * (one.expected_usd() or 0))
    assert six.ceiling_usd() == pytest.approx(6 * 6 * G4DN_PRICE)


def test_epochs_auto_is_priced_at_its_cap(tmp_path: Path) -> None:
    # The network from scratch: 100 images in batches of 32 take 4 steps an epoch, so the cap
    # is 200 epochs (1,000 steps, at most 200): 100 x 200 at 50 img/s here, 4x there: 100 s.
    scratch = {**contract.hyperparameter_defaults(), "model": "scratch"}
    _finished_job(tmp_path, "here", 50.0, backend="process", hyperparameters=scratch)
    backend = SageMakerBackend(resolve({"runs_dir": tmp_path}, environ={}))
    assert scratch["epochs"] == contract.AUTO
    found = pricing.estimate(backend, _dataset(), [scratch], CloudOptions())
    assert found.seconds_per_job == 100.0 + 180.0
    assert "100 images x at most 200 epochs (auto)" in found.basis


def test_the_pretrained_network_is_priced_at_its_few_fine_tuning_epochs(tmp_path: Path) -> None:
    # The default: 4 steps an epoch need 15 epochs for 60 steps: 100 x 15 at 50 img/s, 4x.
    defaults = contract.hyperparameter_defaults()
    _finished_job(tmp_path, "here", 50.0, backend="process", hyperparameters=defaults)
    backend = SageMakerBackend(resolve({"runs_dir": tmp_path}, environ={}))
    found = pricing.estimate(backend, _dataset(), [defaults], CloudOptions())
    assert found.seconds_per_job == 7.5 + 180.0
    assert "100 images x at most 15 epochs (auto)" in found.basis


def test_a_measurement_of_other_settings_does_not_count(tmp_path: Path) -> None:
    _finished_job(tmp_path, "other", 50.0, backend="process")
    record = json.loads((tmp_path / "other" / "job.json").read_text())
    record["hyperparameters"]["image_size"] = "64"
    (tmp_path / "other" / "job.json").write_text(json.dumps(record))
    found = _estimate(tmp_path)
    assert found.seconds_per_job is None
    assert found.amount() == pytest.approx(6 * G4DN_PRICE)


def test_a_trial_of_a_tuning_job_is_a_measurement(tmp_path: Path) -> None:
    _finished_job(tmp_path / "tune-1", "tune-1-001", 50.0, backend="process")
    assert _estimate(tmp_path).seconds_per_job == EXPECTED_SECONDS


def test_this_machine_costs_nothing(tmp_path: Path) -> None:
    backend = ProcessBackend(resolve({"runs_dir": tmp_path}, environ={}))
    found = pricing.estimate(backend, _dataset(), [SETTINGS], CloudOptions())
    assert found.amount() is None
    assert found.lines()[0].startswith("estimate: 1 job on this machine, no charge")


def test_above_the_threshold_a_launch_without_a_terminal_is_refused(tmp_path: Path) -> None:
    found = _estimate(tmp_path, jobs=10)
    with pytest.raises(NotConfirmed, match=r"may cost about \$44.16, above .* \$10.00"):
        pricing.approve(found, 10.0, None, yes=False)


def test_yes_launches_above_the_threshold(tmp_path: Path) -> None:
    pricing.approve(_estimate(tmp_path, jobs=10), 10.0, None, yes=True)


def test_a_yes_on_the_terminal_launches_above_the_threshold(tmp_path: Path) -> None:
    asked: list[str] = []
    pricing.approve(_estimate(tmp_path, jobs=10), 10.0, lambda q: asked.append(q) or True, False)
    assert asked == ["This launch may cost about $44.16. Launch it?"]


def test_below_the_threshold_nothing_is_asked(tmp_path: Path) -> None:
    pricing.approve(_estimate(tmp_path), 10.0, None, yes=False)


def test_an_unverified_price_table_says_so_in_the_estimate(tmp_path: Path) -> None:
    # The shipped table has not been checked against its source yet.
    assert pricing.price_table().verified is False
    assert _estimate(tmp_path).price_basis.startswith("unverified price table of ")


@pytest.mark.parametrize("instance", ["ml.g5.12xlarge", "ml.g6.12xlarge", "ml.p4d.24xlarge"])
def test_instances_of_several_gpus_are_priced(instance: str, tmp_path: Path) -> None:
    _finished_job(tmp_path, "measured", 50.0)
    backend = SageMakerBackend(
        resolve({"runs_dir": tmp_path, "instance_type": instance}, environ={})
    )
    found = pricing.estimate(backend, _dataset(), [SETTINGS], CloudOptions(), 1)
    table = pricing.price_table()
    assert found.price_per_hour == table.instances[instance]["price_per_hour"]
    assert found.price_per_hour is not None and found.price_per_hour > G4DN_PRICE
