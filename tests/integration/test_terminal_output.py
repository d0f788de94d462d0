"""What a person sees in a terminal: the live training line, and none of TensorFlow's
start-up lines, during a tiny real job and when TensorFlow starts in this process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.terminal import elapsed_seconds, in_a_terminal

TENSORFLOW_LINES = ("cuInit", "cuda drivers", "oneDNN", "absl::InitializeLog", "cpu_feature_guard")


@pytest.mark.slow
def test_a_terminal_shows_the_live_line_and_no_tensorflow_lines(
    tiny_photos: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    code, shown = in_a_terminal(
        [
            sys.executable, "-m", "defects", "train", "--data", str(tiny_photos),
            "--epochs", "2", "--image-size", "40x24", "--batch-size", "4", "--job-name", "tty",
        ],
        tmp_path,
    )  # fmt: skip
    took = time.monotonic() - started
    assert code == 0, shown
    assert "epoch 1/2" in shown and "elapsed" in shown and "left" in shown
    assert re.search(r"step \d+/\d+", shown)
    assert "step None" not in shown
    # Every frame, the first one included, counts from the job's start, not the machine's.
    assert elapsed_seconds(shown) and max(elapsed_seconds(shown)) <= took + 1, shown
    assert [word for word in TENSORFLOW_LINES if word in shown] == []
    assert "internal error" not in shown and "Traceback" not in shown


def test_tensorflow_starting_in_this_process_prints_nothing(tmp_path: Path) -> None:
    program = (
        "from defects.console.tfnoise import quiet_tensorflow_start\n"
        "with quiet_tensorflow_start():\n"
        "    import tensorflow as tf\n"
        "    tf.config.list_logical_devices()\n"
        "print(tf.constant(2).numpy())\n"
    )
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    finished = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
        check=True,
    )
    assert finished.stdout == "2\n"
    assert [word for word in TENSORFLOW_LINES if word in finished.stderr] == []


def test_predicting_with_a_square_model_prints_only_the_answers(tmp_path: Path) -> None:
    # A square model answers over the eight orientations of a uint8 image, the first
    # uint8 operation of the process: where oneDNN has no uint8 kernel it says so then.
    program = (
        "import json, sys\n"
        "from defects.training.model import make_model, with_orientations\n"
        "network = with_orientations(make_model((32, 32, 3), 2))\n"
        "network.save(sys.argv[1] + '/model.keras')\n"
        "open(sys.argv[1] + '/class_names.json', 'w').write(json.dumps(['a', 'b']))\n"
    )
    model = tmp_path / "model"
    model.mkdir()
    subprocess.run([sys.executable, "-c", program, str(model)], check=True, capture_output=True)
    from PIL import Image

    Image.new("RGB", (48, 48), (90, 90, 90)).save(tmp_path / "cell.png")
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    finished = subprocess.run(
        [sys.executable, "-m", "defects", "predict", str(model), "cell.png"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=environment,
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.splitlines()[1].startswith("cell.png,")
    assert [word for word in TENSORFLOW_LINES if word in finished.stderr] == []
