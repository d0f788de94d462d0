"""Local mode as a person runs it: the README's command in a terminal (needs Docker)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests.terminal import elapsed_seconds, in_a_terminal

pytestmark = pytest.mark.container


def test_a_local_job_in_a_terminal_shows_the_job_and_nothing_of_the_container(
    tiny_photos: Path, training_image: str, tmp_path: Path
) -> None:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEFECTS_"))},
        "DEFECTS_BACKEND": "local",
        "DEFECTS_TRAINING_IMAGE": training_image,
    }
    started = time.monotonic()
    code, shown = in_a_terminal(
        [
            sys.executable, "-m", "defects", "run", "--data", str(tiny_photos), "--epochs", "2",
            "--image-size", "40x24", "--batch-size", "4", "--job-name", "local-tty",
        ],
        tmp_path,
        environment,
        timeout=600,
    )  # fmt: skip
    took = time.monotonic() - started
    assert code == 0, shown
    assert "internal error" not in shown and "Traceback" not in shown
    assert "epoch 1/2" in shown and "step None" not in shown
    assert elapsed_seconds(shown) and max(elapsed_seconds(shown)) <= took + 1, shown
    # What the container and compose say stays in the job log.
    for leak in (
        "algo-1",
        "defects-progress",
        "metric:",
        "Training Container Execution Completed",
        "Aborting on container exit",
        "oneDNN",
    ):
        assert leak not in shown, leak
    log = (tmp_path / "runs" / "local-tty" / "job.log").read_text()
    assert "defects-progress" in log and "Training Container Execution Completed" in log
    assert (tmp_path / "runs" / "local-tty" / "metrics.json").is_file()
