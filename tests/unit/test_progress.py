"""The progress renderer on recorded lines of each backend, and TensorFlow's noise filtered."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from defects.console.live import OUTPUT_LABEL, JobOutput, LineBuffer, describe, plain
from defects.console.tfnoise import is_noise

PROGRESS = (
    'defects-progress {"event": "step", "epoch": 2, "epochs": 3, "automatic": false, '
    '"step": 4, "steps": 10, "elapsed": 12.0, "left": 34.0, "val_accuracy": 0.75}'
)
NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796197379.883586   28163 port.cc:153] oneDNN custom operations are on. You "
    "may see slightly different numerical results due to floating-point round-off errors from "
    "different computation orders. To turn them off, set the environment variable "
    "`TF_ENABLE_ONEDNN_OPTS=0`.",
    "I0000 00:00:1796197379.884859   28163 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.",
    "E0000 00:00:1796197383.034419   28163 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "I0000 00:00:1796197380.123456   28163 cpu_feature_guard.cc:210] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild "
    "TensorFlow with the appropriate compiler flags.",
    "E0000 00:00:1796338043.444165   15818 util.cc:131] oneDNN supports DT_UINT8 only on "
    "platforms with AVX-512. Falling back to the default Eigen-based implementation if present.",
    "E0000 00:00:1796660315.449888   26531 node_def_util.cc:682] NodeDef mentions attribute "
    "use_unbounded_threadpool which is not in the op definition: Op<name=MapDataset; "
    "signature=input_dataset:variant, other_arguments: -> handle:variant>",
]
EPOCH = "Epoch 2/3 - 2s - loss: 0.5000 - accuracy: 0.8000 - val_loss: 0.6000 - val_accuracy: 0.7500"
# What tuning reads: it stays in the job log, the epoch line says the same to a person.
METRIC = "metric: epoch=2 val_accuracy=0.750000 val_loss=0.600000"
# The SageMaker drivers' start in the training container, as recorded (shortened).
DRIVERS = [
    "Starting training script",
    "++ /opt/venv/bin/python3 --version",
    "Python 3.11.2",
    "++ echo /opt/ml/input/config/resourceconfig.json:",
    "/opt/ml/input/config/resourceconfig.json:",
    '{"current_host": "algo-1", "hosts": ["algo-1"], "current_instance_type": "local_cpu"}',
    "",
    '{"train": {"TrainingInputMode": "File"}, "code": {"TrainingInputMode": "File"}}++ echo',
    "Setting up environment variables",
    "No GPUs detected (normal if no gpus installed)",
    "No Neurons detected (normal if no neurons installed)",
    "Environment Variables:",
    "PYTHONUNBUFFERED=1",
    "AWS_SECRET_ACCESS_KEY=******",
    'SM_HPS={"epochs": 3}',
    "_=/opt/venv/bin/python3",
    "Running Basic Script driver",
    "++ cd /opt/ml/input/data/code",
    "Executing command: /opt/venv/bin/python3 train.py --epochs 3",
]
# The same job as each backend hands its lines over.
PROCESS_LINES = [*NOISE, "Hyperparameters: --epochs 3", PROGRESS, METRIC, EPOCH]
CONTAINER_LINES = [*DRIVERS, *PROCESS_LINES, "Training Container Execution Completed"]
LOCAL_LINES = [  # docker-compose 1.x, in colour, as the SDK prints the container's log
    'Creating network "sm-job_sagemaker-local" with the default driver',
    "Creating sm-job_algo-1_1 ... ",
    "Creating sm-job_algo-1_1 ... done",
    "Attaching to sm-job_algo-1_1",
    *(f"\x1b[36malgo-1_1  |\x1b[0m {line}" for line in CONTAINER_LINES),
    "\x1b[36msm-job_algo-1_1 exited with code 0",
    "\x1b[0mAborting on container exit...",
]
LOCAL_V2_LINES = [  # docker compose v2
    " Network sm-job_sagemaker-local  Creating",
    " Network sm-job_sagemaker-local  Created",
    " Container sm-job-algo-1-1  Creating",
    " Container sm-job-algo-1-1  Created",
    "Attaching to algo-1-1",
    *(f"algo-1-1  | {line}" for line in CONTAINER_LINES),
    "algo-1-1 exited with code 0",
    "Aborting on container exit...",
]
CLOUDWATCH_MESSAGES = list(CONTAINER_LINES)  # CloudWatch events carry the bare lines


def _render(lines: list[str], terminal: bool) -> tuple[str, JobOutput]:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=terminal, width=140)
    with JobOutput(console=console) as output:
        for line in lines:
            output.feed(line + "\n")
    return buffer.getvalue(), output


@pytest.mark.parametrize(
    "lines",
    [PROCESS_LINES, LOCAL_LINES, LOCAL_V2_LINES, CLOUDWATCH_MESSAGES],
    ids=["process", "local", "local-compose-v2", "cloudwatch"],
)
def test_without_a_terminal_only_readable_lines_are_shown(lines: list[str]) -> None:
    shown, output = _render(lines, terminal=False)
    assert shown == f"Hyperparameters: --epochs 3\n{EPOCH}\n"
    assert output.last is not None and output.last["step"] == 4


@pytest.mark.parametrize(
    "lines", [PROCESS_LINES, LOCAL_LINES, CLOUDWATCH_MESSAGES], ids=["process", "local", "cloud"]
)
def test_on_a_terminal_the_live_line_shows_the_job(lines: list[str]) -> None:
    shown, _ = _render(lines, terminal=True)
    for text in ("epoch 2/3", "step 4/10", "elapsed", "left", "val_accuracy 0.750", EPOCH):
        assert text in shown
    assert not any(word in shown for word in ("cuInit", "oneDNN", "absl", "cuda drivers"))


def test_the_live_line_leaves_stdout_to_whoever_set_it() -> None:
    # Local mode tees sys.stdout into the job log while the SDK prints the container's log;
    # the live line must neither print past that tee nor put it back once the job is over.
    class Tee(io.StringIO):
        pass

    tee, saved = Tee(), sys.stdout
    console = Console(file=io.StringIO(), force_terminal=True, width=140)
    sys.stdout = tee
    try:
        with JobOutput(console=console) as output:
            output.feed(PROGRESS + "\n")
            assert sys.stdout is tee
            print("the container's line")
        sys.stdout = saved
    finally:
        sys.stdout = saved
    assert sys.stdout is saved
    assert tee.getvalue() == "the container's line\n"


def test_the_first_frame_of_the_live_line_shows_the_first_event() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=140)
    with JobOutput(console=console) as output:
        output.feed(PROGRESS + "\n")
        first = buffer.getvalue()
    assert "step 4/10" in first and "12s elapsed" in first
    assert "None" not in first


def test_what_the_container_says_when_it_fails_is_shown() -> None:
    lines = [
        "Environment Variables:",
        "SM_NUM_CPUS=2",
        "ERROR: could not install the requirements",
        "algo-1-1 exited with code 1",
    ]
    shown, _ = _render(lines, terminal=False)
    assert shown == "ERROR: could not install the requirements\nalgo-1-1 exited with code 1\n"


def test_the_live_line_texts() -> None:
    event = json.loads(PROGRESS.split(" ", 1)[1])
    assert describe(event) == {
        "epoch": "epoch 2/3",
        "step": "step 4/10",
        "times": "12s elapsed, about 34s left",
        "accuracy": "val_accuracy 0.750",
    }


def test_automatic_epochs_say_until_validation_stops_improving() -> None:
    event = {"epoch": 4, "epochs": 100, "automatic": True, "step": 1, "steps": 5, "left": None}
    assert describe(event)["epoch"] == ("epoch 4 (until validation stops improving, at most 100)")


def test_the_compose_prefix_goes_and_the_line_stays() -> None:
    assert plain("\x1b[36malgo-1_1  |\x1b[0m a | b\n") == "a | b"


def test_lines_of_jobs_printing_at_once_carry_their_label() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=140)

    def trial(label: str | None) -> None:
        if label:
            OUTPUT_LABEL.set(label)
        with JobOutput(console=console, live=False) as output:
            output.feed(EPOCH)

    # Each in a thread of its own, as the tuning driver runs trials.
    for label in ("trial 3", None):
        worker = threading.Thread(target=trial, args=(label,))
        worker.start()
        worker.join()
    assert buffer.getvalue().splitlines() == [f"[trial 3] {EPOCH}", EPOCH]


def test_a_line_written_in_pieces_is_rendered_once_whole() -> None:
    fed: list[str] = []

    class Recorder(JobOutput):
        def feed(self, line: str) -> None:
            fed.append(line)

    lines = LineBuffer(Recorder(live=False))
    for piece in ("algo-1-1  | Epo", "ch 1/2\nalgo-1-1  | done", "\n", "tail"):
        lines.write(piece)
    lines.flush()
    assert fed == ["algo-1-1  | Epoch 1/2", "algo-1-1  | done", "tail"]


@pytest.mark.parametrize("line", NOISE)
def test_tensorflow_start_up_lines_are_noise(line: str) -> None:
    assert is_noise(line)


@pytest.mark.parametrize(
    "line",
    [
        EPOCH,
        "E0000 00:00:1.0  1 conv_ops.cc:9] real failure",
        "E0000 00:00:1.0  1 util.cc:9] another message of a util.cc",
    ],
)
def test_other_lines_are_not_noise(line: str) -> None:
    assert not is_noise(line)


def test_native_stderr_keeps_what_is_not_noise(tmp_path: Path) -> None:
    program = (
        "import os\n"
        "from defects.console.tfnoise import quiet_tensorflow_start\n"
        "with quiet_tensorflow_start():\n"
        f"    os.write(2, {(NOISE[3] + chr(10)).encode()!r})\n"
        "    os.write(2, b'something real\\n')\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert finished.stderr == "something real\n"


def _progress_lines(epochs: int, steps: int, automatic: bool = False) -> list[dict[str, Any]]:
    from defects.training.progress import ProgressLines

    stream = io.StringIO()
    callback = ProgressLines(epochs, automatic=automatic, interval=3600, stream=stream)
    callback.set_params({"epochs": epochs, "steps": steps})
    callback.on_train_begin()
    for epoch in range(epochs):
        callback.on_epoch_begin(epoch)
        for step in range(steps):
            callback.on_train_batch_end(step)
        callback.on_epoch_end(epoch, {"loss": 0.5, "val_accuracy": 0.75})
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith(f"Epoch {epochs}/")
    return [json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith("defects-")]


def test_the_entry_point_reports_each_epoch_end() -> None:
    events = [e for e in _progress_lines(2, 4) if e["event"] == "epoch"]
    assert [(e["epoch"], e["epochs"], e["step"], e["steps"]) for e in events] == [
        (1, 2, 4, 4),
        (2, 2, 4, 4),
    ]
    assert events[-1]["left"] == 0.0
    assert events[-1]["metrics"] == {"loss": 0.5, "val_accuracy": 0.75}


def test_automatic_epochs_estimate_no_time_left() -> None:
    assert {e["left"] for e in _progress_lines(2, 3, automatic=True)} == {None}
