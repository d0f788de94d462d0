"""A user's own class folders, named as they like, through `defects run --data` without
`--classes`: the job trains on those classes and the model answers with their names."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from tests.cli import run_cli
from tests.conftest import use_moto

# Three of the synthetic classes under the user's names, inside an archive's top folder.
RENAMED = {"good": "ok", "oil": "Smudge", "scratch": "crack"}


@pytest.fixture
def own_photos(tiny_photos: Path, tmp_path: Path) -> Path:
    source = tmp_path / "unpacked"
    for ours, theirs in RENAMED.items():
        shutil.copytree(tiny_photos / ours, source / "phones-2026" / theirs)
    (source / "phones-2026" / "notes").mkdir()
    return source


def test_run_trains_on_the_folders_it_is_given(
    own_photos: Path,
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    use_moto(monkeypatch, moto_endpoint)
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="defects")
    code, out, err = run_cli(
        "run",
        "--data",
        str(own_photos),
        "--epochs",
        "2",
        "--image-size",
        "40x24",
        "--batch-size",
        "8",
        "--job-name",
        "own",
        "--json",
    )
    assert code == 0, err[-3000:]
    described = json.loads(out)
    assert (described["name"], described["status"]) == ("own", "completed")
    assert described["dataset"]["classes"] == ["Smudge", "crack", "ok"]
    assert "succeeded: job own on process" in err
    assert "(classes Smudge, crack, ok): train" in caplog.text
    assert "phones-2026/notes" in caplog.text  # an empty folder: reported, not a class
    run_dir = tmp_path / "runs" / "own"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["class_names"] == ["Smudge", "crack", "ok"]
    manifest = json.loads((run_dir / "job.json").read_text())
    assert manifest["request"]["classes"] is None

    photo = next((own_photos / "phones-2026" / "crack").iterdir())
    code, out, err = run_cli("predict", "own", str(photo), "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["class"] in {"Smudge", "crack", "ok"}
    assert set(answer["probabilities"]) == {"Smudge", "crack", "ok"}
