"""A model archive given to predict or evaluate is unpacked safely or refused clearly."""

from __future__ import annotations

import io
import re
import tarfile
import tempfile
from pathlib import Path

import pytest

from defects.errors import DataError, UnsafeArchive
from defects.inference.evaluation import evaluate
from defects.inference.loading import load_model
from defects.inference.prediction import predict
from tests.cli import run_cli
from tests.conftest import CLI


@pytest.fixture
def hostile_model(tmp_path: Path) -> Path:
    """A model.tar.gz whose second member is a link out of wherever it is unpacked."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        names = tarfile.TarInfo("class_names.json")
        names.size = 2
        tar.addfile(names, io.BytesIO(b"[]"))
        link = tarfile.TarInfo("model.keras")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(buffer.getvalue())
    return archive


@pytest.fixture
def temporary_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the model is unpacked, to see that nothing stays behind."""
    root = tmp_path / "temporary"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def test_predict_refuses_a_model_archive_with_a_link(
    hostile_model: Path, temporary_root: Path
) -> None:
    with pytest.raises(UnsafeArchive) as raised:
        predict(hostile_model, [])
    assert f"{hostile_model}: its member 'model.keras' is a symbolic link" in str(raised.value)
    assert list(temporary_root.iterdir()) == []


def test_evaluate_refuses_a_job_folder_whose_model_archive_has_a_link(
    hostile_model: Path, temporary_root: Path
) -> None:
    with pytest.raises(UnsafeArchive, match="its member 'model.keras' is a symbolic link"):
        evaluate(hostile_model.parent, data=hostile_model.parent)
    assert list(temporary_root.iterdir()) == []


def test_the_predict_command_reports_a_refused_archive_without_a_traceback(
    hostile_model: Path, tmp_path: Path
) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(b"not read")
    code, _, err = run_cli("predict", str(hostile_model), str(image))
    assert code == 1
    assert "archive refused" in err and "is a symbolic link" in err
    assert "Traceback" not in err


def test_a_keras_file_without_its_class_names_is_refused_with_the_fix(tmp_path: Path) -> None:
    model = tmp_path / "exported.keras"
    model.write_bytes(b"not read: the check comes first")
    with pytest.raises(DataError) as raised:
        load_model(model)
    assert "exported.keras has no class_names.json beside it" in str(raised.value)
    assert "class_names.json" in (raised.value.hint or "")


def test_an_archive_without_class_names_is_refused_and_nothing_stays_behind(
    tmp_path: Path, temporary_root: Path
) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        member = tarfile.TarInfo("model.keras")
        member.size = 3
        tar.addfile(member, io.BytesIO(b"abc"))
    archive = tmp_path / "model.tar.gz"
    archive.write_bytes(buffer.getvalue())
    with pytest.raises(DataError, match="has no class_names.json beside it"):
        load_model(archive)
    assert list(temporary_root.iterdir()) == []


@pytest.mark.parametrize(
    ("shape", "takes"),
    [
        ((None, None, 3), "(None, None, None, 3)"),
        ((10,), "(None, 10)"),
        ((8, 8, 1), "(None, 8, 8, 1)"),
    ],
)
def test_a_model_not_made_for_images_of_one_size_is_refused_with_its_shapes(
    tmp_path: Path, shape: tuple[int | None, ...], takes: str
) -> None:
    import json

    import keras

    inputs = keras.Input(shape)
    features = keras.layers.GlobalMaxPooling2D()(inputs) if len(shape) == 3 else inputs
    keras.Model(inputs, keras.layers.Dense(2)(features)).save(tmp_path / "model.keras")
    (tmp_path / "class_names.json").write_text(json.dumps(["a", "b"]))
    with pytest.raises(DataError, match="is not a model this tool can use") as raised:
        load_model(tmp_path)
    assert f"takes {takes} and answers (None, 2)" in str(raised.value)
    assert raised.value.headline == "the model cannot be loaded"


def test_evaluating_a_job_whose_record_is_damaged_asks_for_data(tmp_path: Path) -> None:
    job = tmp_path / "runs" / "broken-job"
    job.mkdir(parents=True)
    (job / "job.json").write_text('{"dataset_root": ')
    with pytest.raises(DataError, match="No dataset is recorded") as raised:
        evaluate(job)
    assert "--data" in (raised.value.hint or "")


def test_evaluating_a_job_whose_dataset_is_gone_says_so(tmp_path: Path) -> None:
    job = tmp_path / "runs" / "old-job"
    job.mkdir(parents=True)
    gone = tmp_path / "data" / "prepared" / "abc"
    (job / "job.json").write_text(f'{{"dataset_root": "{gone}"}}')
    with pytest.raises(DataError, match="The dataset old-job trained on is gone") as raised:
        evaluate(job)
    assert str(gone) in str(raised.value) and "--data" in (raised.value.hint or "")


def test_evaluate_data_that_does_not_exist_is_refused_before_the_model_loads(
    tmp_path: Path,
) -> None:
    code, _, err = run_cli("evaluate", str(tmp_path), "--data", str(tmp_path / "missing"))
    assert code == 2
    assert "does not exist" in err and "Traceback" not in err


@pytest.fixture
def job_of_tiny_photos(tiny_photos: Path, tmp_path: Path) -> Path:
    """A job folder as training leaves it, with an untrained model: its record names the
    prepared copy of ``tiny_photos`` as its data."""
    import json

    import keras

    from defects.dataset.prepare import prepare

    dataset = prepare(tiny_photos, tmp_path / "prepared")
    job = tmp_path / "runs" / "seen-job"
    (job / "model").mkdir(parents=True)
    inputs = keras.Input((24, 40, 3))
    outputs = keras.layers.Dense(4, activation="softmax")(
        keras.layers.GlobalMaxPooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    )
    keras.Model(inputs, outputs).save(job / "model" / "model.keras")
    classes = ["good", "oil", "scratch", "stain"]
    (job / "model" / "class_names.json").write_text(json.dumps(classes))
    (job / "job.json").write_text(json.dumps({"dataset_root": str(dataset.root)}))
    return job


def test_evaluating_on_the_photos_a_job_trained_on_counts_them_and_scores_the_rest_apart(
    job_of_tiny_photos: Path, tiny_photos: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import json

    from defects.dataset.manifest import load_manifest

    dataset = load_manifest(job_of_tiny_photos.parent.parent / "prepared")
    assert dataset is not None
    sizes = {split: sum(dataset.counts[split].values()) for split in dataset.counts}
    result = evaluate(job_of_tiny_photos, data=tiny_photos)
    metrics = result.metrics
    assert metrics["count"] == sum(sizes.values())
    assert metrics["seen_in_training"] == {
        "train": sizes["train"],
        "validation": sizes["validation"],
    }
    assert metrics["unseen"]["count"] == sizes["test"]
    assert sum(map(sum, metrics["unseen"]["confusion_matrix"])) == sizes["test"]
    written = json.loads((result.out_dir / "metrics.json").read_text())
    assert written["seen_in_training"] == metrics["seen_in_training"]
    assert written["unseen"]["count"] == sizes["test"]
    seen = sizes["train"] + sizes["validation"]
    assert f"{seen} of the {metrics['count']} photos were in the job's own train" in caplog.text


def test_evaluating_the_jobs_own_test_split_finds_no_photo_it_saw(
    job_of_tiny_photos: Path,
) -> None:
    metrics = evaluate(job_of_tiny_photos).metrics
    assert metrics["seen_in_training"] == {"train": 0, "validation": 0}
    assert "unseen" not in metrics


def test_the_evaluate_command_shows_the_photos_the_job_never_saw_apart(
    job_of_tiny_photos: Path, tiny_photos: Path, cli: CLI, caplog: pytest.LogCaptureFixture
) -> None:
    code, out, err = cli("evaluate", str(job_of_tiny_photos), "--data", str(tiny_photos))
    assert code == 0, err
    assert re.search(r"^all: accuracy .* \(24 images, 20 seen in training\)$", out, re.M)
    assert re.search(r"^never seen in training: accuracy .* \(4 images\)$", out, re.M)
    said = "20 of the 24 photos were in the job's own train (16) or validation (4) split"
    assert said in caplog.text
