"""The process backend end to end on tiny synthetic photos, with a real moto server."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import boto3
import numpy as np
import pytest

from defects.jobs.records import JobResult
from defects.pipeline import launch as pipeline
from defects.settings import resolve
from tests.cli import run_cli
from tests.conftest import use_moto

# Not square, as the default is not: width 40, height 24.
TINY: dict[str, str | int] = {"epochs": 2, "image_size": "40x24", "batch_size": 8}


@pytest.fixture(scope="module")
def finished_job(
    tiny_photos: Path, moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> JobResult:
    """One tiny job for the whole module: training is the slow part."""
    root = tmp_path_factory.mktemp("process")
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_moto(monkeypatch, moto_endpoint)
        settings = resolve({"runs_dir": root / "runs"})
        return pipeline.run(
            data=tiny_photos,
            settings=settings,
            hyperparameters=TINY,
            job_name="tiny-job",
            data_dir=root / "data",
        )


def test_run_leaves_every_artifact_in_the_job_folder(finished_job: JobResult) -> None:
    run_dir = finished_job.run_dir
    for name in (
        "history.json",
        "metrics.json",
        "curves.png",
        "confusion.png",
        "job.json",
        "job.log",
        "model.tar.gz",
        "output.tar.gz",
        "model/model.keras",
        "model/class_names.json",
        "model/saved_model/1/saved_model.pb",
    ):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_history_has_one_value_per_epoch(finished_job: JobResult) -> None:
    history = json.loads((finished_job.run_dir / "history.json").read_text())
    assert history["epoch"] == [1, 2]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert len(history[key]) == 2


def test_metrics_carry_per_class_scores_and_the_confusion_matrix(
    finished_job: JobResult,
) -> None:
    metrics = json.loads((finished_job.run_dir / "metrics.json").read_text())
    validation = metrics["validation"]
    assert validation["class_names"] == ["good", "oil", "scratch", "stain"]
    assert set(validation["per_class"]["oil"]) == {"precision", "recall", "f1", "support"}
    matrix = np.array(validation["confusion_matrix"])
    assert matrix.shape == (4, 4)
    assert matrix.sum() == validation["count"]
    assert "test" in metrics


def test_artifacts_are_uploaded_to_the_job_output_keys(
    finished_job: JobResult, moto_endpoint: str
) -> None:
    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="defects")["Contents"]}
    assert "defects/jobs/tiny-job/output/model.tar.gz" in keys
    assert "defects/jobs/tiny-job/output/output.tar.gz" in keys
    assert any(k.startswith("defects/datasets/") and "/train/part-00000.tar" in k for k in keys)


def test_archives_hold_the_sagemaker_layout(finished_job: JobResult) -> None:
    with tarfile.open(finished_job.run_dir / "model.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"model.keras", "class_names.json", "saved_model"} <= names
    with tarfile.open(finished_job.run_dir / "output.tar.gz") as tar:
        assert {"history.json", "metrics.json"} <= set(tar.getnames())


def test_saved_model_predicts_probabilities(finished_job: JobResult) -> None:
    import keras

    # model.keras holds the project's own loss (and, for square inputs, layers): Keras finds
    # them once defects.training.model is imported, as defects.load_model does.
    import defects.training.model  # noqa: F401

    model = keras.models.load_model(finished_job.run_dir / "model" / "model.keras")
    assert model.input_shape == (None, 24, 40, 3)
    probabilities = model.predict(np.zeros((2, 24, 40, 3), dtype="uint8"), verbose=0)
    assert probabilities.shape == (2, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_job_name_cannot_be_reused(
    finished_job: JobResult, tiny_photos: Path, tmp_path: Path
) -> None:
    from defects.errors import ConfigError

    runs_dir = finished_job.run_dir.parent
    before = (finished_job.run_dir / "job.json").read_text()
    with pytest.raises(ConfigError, match="already exists"):
        pipeline.run(
            data=tiny_photos,
            settings=resolve({"runs_dir": runs_dir}),
            hyperparameters=TINY,
            job_name="tiny-job",
            data_dir=tmp_path / "data",
        )
    assert (finished_job.run_dir / "job.json").read_text() == before


def test_evaluate_uses_the_jobs_own_dataset(finished_job: JobResult) -> None:
    from defects.inference.evaluation import evaluate

    result = evaluate(finished_job.run_dir, split="test")
    metrics, out_dir = result.metrics, result.out_dir
    assert metrics["split"] == "test"
    assert metrics["count"] == sum(sum(row) for row in metrics["confusion_matrix"])
    assert (out_dir / "metrics.json").is_file() and (out_dir / "confusion.png").is_file()
    # The training metrics stay as they were.
    assert json.loads((finished_job.run_dir / "metrics.json").read_text())["validation"]


def test_evaluate_on_new_photos_skips_broken_files_and_keeps_the_jobs_own_evaluation(
    finished_job: JobResult, tiny_photos: Path, tmp_path: Path
) -> None:
    from defects.inference.evaluation import evaluate

    own = evaluate(finished_job.run_dir, split="test")
    before = (own.out_dir / "metrics.json").read_text()
    photos = tmp_path / "new photos"
    names = sorted(p.name for p in tiny_photos.iterdir())
    shutil.copytree(tiny_photos / names[0], photos / names[0])
    (photos / names[0] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n half a header")
    count = len(list((tiny_photos / names[0]).iterdir()))

    result = evaluate(finished_job.run_dir, data=photos)
    metrics = result.metrics
    assert metrics["split"] == "all" and metrics["count"] == count
    assert [Path(s["path"]).name for s in metrics["skipped"]] == ["broken.png"]
    # Macro-F1 over the one class these photos have, not diluted by the absent ones.
    assert metrics["macro_f1"] == metrics["per_class"][names[0]]["f1"]
    assert result.out_dir != own.out_dir and result.out_dir.parent == finished_job.run_dir
    assert result.out_dir.name.startswith("evaluation-all-new_photos-")
    assert (own.out_dir / "metrics.json").read_text() == before


def test_predict_answers_for_good_files_and_reports_bad_ones(
    finished_job: JobResult, tiny_photos: Path, tmp_path: Path
) -> None:
    from defects.inference.prediction import predict

    bad = tmp_path / "broken.jpg"
    bad.write_text("not a photo")
    good = sorted((tiny_photos / "oil").iterdir())[0]
    results = predict(finished_job.run_dir / "model.tar.gz", [good, bad])
    assert results[0].label in {"good", "oil", "scratch", "stain"}
    assert abs(sum(results[0].probabilities.values()) - 1.0) < 1e-4
    assert results[1].label is None
    assert results[1].error == "not an image (no JPEG, PNG, BMP, WebP, TIFF or HEIC content)"


def test_predict_cli_exits_1_when_a_file_is_unreadable(
    finished_job: JobResult,
    tiny_photos: Path,
    tmp_path: Path,
) -> None:
    bad = tmp_path / "empty.png"
    bad.write_bytes(b"")
    good = sorted((tiny_photos / "stain").iterdir())[0]
    code, out, err = run_cli("predict", str(finished_job.run_dir), str(good), str(bad), "--json")
    assert code == 1
    # The answers on stdout (JSON Lines), the unreadable file once on stderr.
    answers = [json.loads(line) for line in out.splitlines()]
    assert [answer["path"] for answer in answers] == [str(good)]
    assert answers[0]["class"] in {"good", "oil", "scratch", "stain"}
    assert err.count(str(bad)) == 1
    assert "empty file (0 bytes)" in err


def test_same_seed_gives_the_same_history(
    finished_job: JobResult, tiny_photos: Path, moto_endpoint: str, tmp_path: Path
) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        use_moto(monkeypatch, moto_endpoint)
        again = pipeline.run(
            data=tiny_photos,
            settings=resolve({"runs_dir": tmp_path / "runs"}),
            hyperparameters=TINY,
            job_name="tiny-again",
            data_dir=tmp_path / "data",
        )
    first = json.loads((finished_job.run_dir / "history.json").read_text())
    second = json.loads((again.run_dir / "history.json").read_text())
    assert second == first
