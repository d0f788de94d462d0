"""The same search in the training container: a tuning job on the local backend (needs
Docker), two tiny trials, the objective read through the SageMaker metric definitions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defects.pipeline.request import JobRequest
from defects.settings import resolve
from defects.tuning import driver, make_spec
from tests.conftest import use_moto

pytestmark = pytest.mark.container


def test_a_local_tuning_job_runs_its_trials_in_the_container(
    tiny_photos: Path,
    moto_endpoint: str,
    training_image: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_moto(monkeypatch, moto_endpoint)
    monkeypatch.setenv("DEFECTS_TRAINING_IMAGE", training_image)
    # One at a time: local mode's compose network is shared by name between jobs.
    spec = make_spec(
        ["learning_rate=0.0005:0.01:log", "batch_size=8,16"],
        strategy="random",
        max_jobs=2,
        max_parallel_jobs=1,
        seed=1,
    )
    tuning = driver.tune(
        spec,
        JobRequest(
            data=tiny_photos,
            settings=resolve({"backend": "local", "runs_dir": tmp_path / "runs"}),
            hyperparameters={"epochs": 1, "image_size": "40x24"},
            job_name="box-tune",
            data_dir=tmp_path / "data",
        ),
    )
    assert [trial.state for trial in tuning.trials] == ["completed", "completed"]
    for trial in tuning.trials:
        run_dir = tmp_path / "runs" / "box-tune" / trial.name
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert trial.objective == pytest.approx(metrics["validation"]["macro_f1"], abs=1e-6)
        assert json.loads((run_dir / "job.json").read_text())["backend"] == "local"
