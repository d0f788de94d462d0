"""What the backends say about options that only the cloud can honour."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from defects.backends import create
from defects.backends.base import CloudOptions
from defects.settings import resolve


@pytest.mark.parametrize("name", ["process", "local"])
def test_cloud_options_are_named_as_ignored_off_the_cloud(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = create(resolve({"backend": name}, environ={}))
    with caplog.at_level(logging.WARNING, logger="defects"):
        backend.check_options(CloudOptions(spot=True, tags=(("team", "qa"),)))
    message = caplog.text
    assert "--spot, --tag only apply to DEFECTS_BACKEND=sagemaker" in message
    assert f"the {name} backend ignores them" in message


def test_no_cloud_options_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    backend = create(resolve({"backend": "process"}, environ={}))
    with caplog.at_level(logging.WARNING, logger="defects"):
        backend.check_options(CloudOptions())
    assert caplog.text == ""


def test_a_new_attempt_never_clears_an_opt_ml_tree_reached_by_a_link(tmp_path: Path) -> None:
    from defects.backends.base import TrainingJob
    from defects.errors import JobNotFound

    home = tmp_path / "home"
    (home / "ml" / "notes").mkdir(parents=True)
    (home / "ml" / "notes" / "precious.txt").write_text("keep")
    run_dir = tmp_path / "runs" / "victim"
    run_dir.mkdir(parents=True)
    (run_dir / "opt").symlink_to(home)
    backend = create(resolve({"backend": "process", "runs_dir": tmp_path / "runs"}, environ={}))
    job = TrainingJob("victim", {}, {}, run_dir, source_dir=tmp_path / "code")
    with pytest.raises(JobNotFound, match="is a symbolic link"):
        backend.train(job, store=None)  # type: ignore[arg-type]
    assert (home / "ml" / "notes" / "precious.txt").read_text() == "keep"


def test_the_hyperparameters_are_printed_once_by_the_entry_point_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from defects.backends.base import TrainingJob
    from defects.errors import TrainingFailed

    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(
        "import sys\nprint('Hyperparameters: ' + ' '.join(sys.argv[1:]))\nsys.exit(3)\n"
    )
    run_dir = tmp_path / "runs" / "once"
    run_dir.mkdir(parents=True)
    backend = create(resolve({"backend": "process", "runs_dir": tmp_path / "runs"}, environ={}))
    job = TrainingJob("once", {"epochs": 2, "seed": 5}, {}, run_dir, source_dir=code)
    with caplog.at_level(logging.INFO, logger="defects"), pytest.raises(TrainingFailed):
        backend.train(job, store=None)  # type: ignore[arg-type]
    assert f"Running the entry point {code / 'train.py'}." in caplog.messages
    assert "--epochs" not in caplog.text
    assert (run_dir / "job.log").read_text() == "Hyperparameters: --epochs 2 --seed 5\n"
