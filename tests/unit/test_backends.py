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
