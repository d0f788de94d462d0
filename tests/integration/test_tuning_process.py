"""A tuning job on the process backend: six tiny trials, two at a time, each an ordinary
job, with the objective read from the real entry point's log by the metric definitions
SageMaker gets; then an interrupted one resumed."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from defects.pipeline.request import JobRequest
from defects.settings import resolve
from defects.training import metric_log
from defects.tuning import driver, make_spec, record
from defects.tuning.record import TuningRecord
from tests.conftest import use_moto

# Not square, as the default is not: width 40, height 24.
TINY: dict[str, str | int] = {"epochs": 2, "image_size": "40x24"}
SEARCH = ["learning_rate=0.0005:0.01:log", "batch_size=8,16"]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def logged() -> Iterator[list[str]]:
    """What the tool logs while this module's tuning job runs."""
    handler = _Lines()
    logging.getLogger("defects").addHandler(handler)
    yield handler.lines
    logging.getLogger("defects").removeHandler(handler)


@pytest.fixture(scope="module")
def tuned(
    tiny_photos: Path,
    moto_endpoint: str,
    tmp_path_factory: pytest.TempPathFactory,
    logged: list[str],
) -> tuple[TuningRecord, Path]:
    root = tmp_path_factory.mktemp("tune")
    spec = make_spec(SEARCH, strategy="random", max_jobs=6, max_parallel_jobs=2, seed=1)
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_moto(monkeypatch, moto_endpoint)
        tuning = driver.tune(
            spec,
            JobRequest(
                data=tiny_photos,
                settings=resolve({"runs_dir": root / "runs"}),
                hyperparameters=TINY,
                job_name="tiny-tune",
                data_dir=root / "data",
            ),
        )
    return tuning, root / "runs" / "tiny-tune"


def test_every_trial_completes_with_an_objective(tuned: tuple[TuningRecord, Path]) -> None:
    tuning, _ = tuned
    assert [trial.state for trial in tuning.trials] == ["completed"] * 6
    assert all(trial.objective is not None for trial in tuning.trials)
    # The final validation loss, which breaks ties between equal objectives.
    assert all(trial.validation_loss is not None for trial in tuning.trials)


def test_two_trials_run_at_a_time_and_never_more(tuned: tuple[TuningRecord, Path]) -> None:
    tuning, _ = tuned
    spans = [(trial.started_at or 0.0, trial.ended_at or 0.0) for trial in tuning.trials]
    running_at_each_start = [
        sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans
    ]
    assert max(running_at_each_start) == 2


def test_each_trial_is_a_job_folder_with_its_record(tuned: tuple[TuningRecord, Path]) -> None:
    tuning, tuning_dir = tuned
    for trial in tuning.trials:
        job = json.loads((tuning_dir / trial.name / "job.json").read_text())
        assert (job["job_name"], job["tuning_job"], job["status"]) == (
            trial.name,
            "tiny-tune",
            "completed",
        )
        assert job["hyperparameters"]["batch_size"] == trial.params["batch_size"]
        assert (tuning_dir / trial.name / "model" / "model.keras").is_file()


def test_each_trial_names_its_hyperparameters_once(
    tuned: tuple[TuningRecord, Path], logged: list[str]
) -> None:
    tuning, tuning_dir = tuned
    for trial in tuning.trials:
        # The entry point's line, as on every backend ...
        assert (tuning_dir / trial.name / "job.log").read_text().count("Hyperparameters: ") == 1
        # ... and the search's choice, once.
        assert sum(line.startswith(f"Trial {trial.name}: ") for line in logged) == 1
    # The tool's own lines do not repeat the entry point's.
    assert [line for line in logged if "--batch_size" in line] == []


def test_the_best_trial_has_the_highest_macro_f1(tuned: tuple[TuningRecord, Path]) -> None:
    tuning, _ = tuned
    best = tuning.best()
    assert best is not None
    assert best.objective == max(trial.objective or 0.0 for trial in tuning.trials)
    tied = [t for t in tuning.trials if t.objective == best.objective]
    assert best.validation_loss == min(t.validation_loss or float("inf") for t in tied)


def test_every_metric_definition_matches_the_entry_points_log(
    tuned: tuple[TuningRecord, Path],
) -> None:
    tuning, tuning_dir = tuned
    trial = tuning.trials[0]
    lines = (tuning_dir / trial.name / "job.log").read_text().splitlines()
    metrics = json.loads((tuning_dir / trial.name / "metrics.json").read_text())["validation"]
    history = json.loads((tuning_dir / trial.name / "history.json").read_text())
    found = {d["Name"]: metric_log.values(d, lines) for d in metric_log.METRIC_DEFINITIONS}
    # One value per epoch and the final one; macro-F1 only at the end without epoch_metrics.
    assert found["validation:accuracy"] == pytest.approx(
        [*history["val_accuracy"], metrics["accuracy"]], abs=1e-6
    )
    assert found["validation:loss"] == pytest.approx(
        [*history["val_loss"], history["val_loss"][-1]], abs=1e-6
    )
    assert found["validation:macro_f1"] == pytest.approx([metrics["macro_f1"]], abs=1e-6)
    assert trial.objective == pytest.approx(metrics["macro_f1"], abs=1e-6)


def test_tune_json_and_tune_png_are_written(tuned: tuple[TuningRecord, Path]) -> None:
    tuning, tuning_dir = tuned
    saved = json.loads((tuning_dir / "tune.json").read_text())
    assert (saved["status"], saved["best_trial"]) == ("completed", tuning.best().name)  # type: ignore[union-attr]
    # The validation split's size, which says what differences between trials it measures.
    manifest = json.loads((Path(saved["data"]["dataset_root"]) / "manifest.json").read_text())
    assert saved["data"]["validation_images"] == sum(manifest["counts"]["validation"].values())
    assert saved["warnings"] == tuning.warnings()
    assert (tuning_dir / "tune.png").read_bytes()[:4] == b"\x89PNG"


def test_an_interrupted_tuning_job_resumes_keeping_its_finished_trials(
    tuned: tuple[TuningRecord, Path], moto_endpoint: str, tmp_path: Path
) -> None:
    _, tuning_dir = tuned
    runs = tmp_path / "runs"
    shutil.copytree(tuning_dir, runs / "tiny-tune")
    interrupted = record.read(runs / "tiny-tune")
    for trial in interrupted.trials[4:]:
        trial.state, trial.objective = "interrupted", None
    interrupted.status = "interrupted"
    interrupted.write(runs / "tiny-tune")
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_moto(monkeypatch, moto_endpoint)
        resumed = driver.resume("tiny-tune", resolve({"runs_dir": runs}))
    assert [t.state for t in resumed.trials] == ["completed"] * 4 + ["interrupted"] * 2 + [
        "completed"
    ] * 2
    assert [t.name for t in resumed.trials[6:]] == ["tiny-tune-007", "tiny-tune-008"]
    assert resumed.status == "completed"


def test_a_full_disk_stops_the_search_and_resume_goes_on(
    tiny_photos: Path, moto_endpoint: str, tmp_path: Path
) -> None:
    import errno

    from defects.errors import DataError, DiskError
    from defects.pipeline import launch as pipeline

    spec = make_spec(SEARCH, strategy="random", max_jobs=3, max_parallel_jobs=1, seed=2)
    settings = resolve({"runs_dir": tmp_path / "runs"})
    fetch = pipeline.fetch
    calls: list[str] = []

    def full_on_the_second(job_name: str, *args: object) -> Path:
        calls.append(job_name)
        if len(calls) == 2:
            try:
                raise OSError(errno.ENOSPC, "No space left on device")
            except OSError as error:
                raise DataError(f"Could not extract {job_name}'s model.tar.gz.") from error
        return fetch(job_name, *args)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as monkeypatch:
        use_moto(monkeypatch, moto_endpoint)
        monkeypatch.setattr(pipeline, "fetch", full_on_the_second)
        with pytest.raises(DiskError, match="the search stops here") as caught:
            driver.tune(
                spec,
                JobRequest(
                    data=tiny_photos,
                    settings=settings,
                    hyperparameters={**TINY, "epochs": 1},
                    job_name="full-tune",
                    data_dir=tmp_path / "data",
                ),
            )
    assert "`defects tune --resume full-tune` continues the search" in caught.value.hint
    stopped = record.read(tmp_path / "runs" / "full-tune")
    # No third trial was started on a full disk.
    assert [t.state for t in stopped.trials] == ["completed", "failed"]
    assert stopped.status == "failed"

    with pytest.MonkeyPatch.context() as monkeypatch:
        use_moto(monkeypatch, moto_endpoint)
        resumed = driver.resume("full-tune", settings)
    assert resumed.status == "completed"
    assert [t.state for t in resumed.trials][:2] == ["completed", "failed"]
    assert resumed.trials[-1].state == "completed"
