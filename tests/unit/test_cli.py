"""What a user sees when something is wrong: a message with a fix, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CLI


def test_config_prints_every_setting_with_its_source(
    cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEFECTS_BUCKET", "team-bucket")
    code, out, _ = cli("config", "--prefix", "exp1")
    assert code == 0
    assert "team-bucket" in out and "env DEFECTS_BUCKET" in out
    assert "exp1" in out and "flag" in out


def test_unknown_backend_exits_2_with_the_choices(
    cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEFECTS_BACKEND", "cloud")
    code, _, err = cli("config")
    assert code == 2
    assert "'cloud' is not one of 'process', 'local', 'sagemaker'" in err
    assert "DEFECTS_BACKEND" in err
    assert "Traceback" not in err


def test_missing_data_folder_is_a_clear_error(cli: CLI, tmp_path: Path) -> None:
    code, _, err = cli("prepare", str(tmp_path / "missing"))
    assert code == 1
    assert "does not exist" in err and "hint:" in err
    assert "Traceback" not in err


def test_prepare_json_names_the_classes_counts_and_skipped_files(
    cli: CLI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import numpy as np
    from PIL import Image

    for index, name in enumerate(("ok", "dent")):
        (tmp_path / "src" / name).mkdir(parents=True)
        for i in range(4):
            pixels = np.full((20, 30, 3), 40 * index + i, np.uint8)
            Image.fromarray(pixels).save(tmp_path / "src" / name / f"{i}.png")
    (tmp_path / "src" / "ok" / "notes.txt").write_text("not a photo")
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli("prepare", "src", "--json")
    assert code == 0
    prepared = json.loads(out)
    assert prepared["classes"] == ["dent", "ok"]
    assert prepared["counts"]["train"] == {"dent": 2, "ok": 2}
    skipped = {"source": "ok/notes.txt", "reason": "unsupported file type .txt"}
    assert prepared["skipped"] == [skipped]
    assert (tmp_path / prepared["root"] / "manifest.json").is_file()


def test_wrong_flag_value_is_a_usage_error(cli: CLI) -> None:
    code, _, err = cli("run", "--epochs", "0")
    assert code == 2
    assert "--epochs" in err


def test_bad_image_size_is_a_usage_error_that_shows_the_form(
    cli: CLI,
) -> None:
    code, _, err = cli("run", "--image-size", "448by252")
    assert code == 2
    assert "--image-size" in err and "384x216" in err


def test_bad_class_list_is_a_usage_error(cli: CLI) -> None:
    code, _, err = cli("prepare", ".", "--classes", "only")
    assert code == 2
    assert "at least two" in err


def test_invalid_job_name_is_refused_before_any_work(cli: CLI, tmp_path: Path) -> None:
    code, _, err = cli("run", "--job-name", "bad name!", "--runs-dir", str(tmp_path))
    assert code == 2
    assert "not a valid job name" in err
    assert list(tmp_path.iterdir()) == []


def test_history_of_unknown_job_names_the_fix(cli: CLI, tmp_path: Path) -> None:
    code, _, err = cli("history", "nope", "--runs-dir", str(tmp_path))
    assert code == 1
    missing = tmp_path / "nope"
    assert err.startswith(f"error: no such job\nNo job 'nope': {missing} is not a folder.")
    assert "problem with the input data" not in err


def test_history_prints_one_row_per_epoch(cli: CLI, tmp_path: Path) -> None:
    job = tmp_path / "job1"
    job.mkdir()
    (job / "history.json").write_text(
        '{"epoch": [1, 2], "loss": [0.9, 0.5], "accuracy": [0.5, 0.75], '
        '"val_loss": [1.0, 0.6], "val_accuracy": [0.4, 0.7]}'
    )
    code, out, _ = cli("history", str(job))
    assert code == 0
    assert "0.7500" in out and "0.7000" in out
