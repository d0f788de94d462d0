"""A model archive given to predict or evaluate is unpacked safely or refused clearly."""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path

import pytest

from defects.errors import DataError, UnsafeArchive
from defects.inference.loading import evaluate, load_model
from defects.inference.prediction import predict
from tests.cli import run_cli


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
