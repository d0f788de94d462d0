"""``process``: the entry point as a subprocess on this machine, in an emulated ``opt/ml``."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from defects import storage
from defects.backends.artifacts import failure_reason, upload_results
from defects.backends.base import Backend, Check, TrainingJob, TrainingResult
from defects.console import err, log
from defects.errors import TrainingFailed
from defects.training import contract


def entry_point_command(script: Path, hyperparameters: Mapping[str, object]) -> list[str]:
    """``python <script> --name value ...``, as SageMaker starts a script-mode entry point."""
    return [sys.executable, str(script), *contract.hyperparameter_arguments(hyperparameters)]


def run_entry_point(
    script: Path,
    base: Path,
    channels: Mapping[str, Path],
    hyperparameters: Mapping[str, object],
    log_file: TextIO,
    on_line: Callable[[str], None] = lambda line: None,
) -> int:
    """Run the entry point ``script`` in its own folder, with the hyperparameters as
    arguments and the ``SM_*`` variables of the ``opt/ml`` tree at ``base``; return its exit
    status.

    The entry point never talks to AWS: it gets no endpoint and no credentials. Each line of
    its output goes to ``log_file`` as it arrives (follow a long run with ``tail -f``) and
    to ``on_line``. If this is interrupted, the entry point is stopped too.
    """
    for sub_path in (contract.MODEL_PATH, contract.OUTPUT_DATA_PATH, contract.CHECKPOINTS_PATH):
        (base / sub_path).mkdir(parents=True, exist_ok=True)
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    environment.update(contract.job_environment(base, channels, hyperparameters))
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    environment["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        entry_point_command(script, hyperparameters),
        cwd=script.parent,  # as in the container, where the source folder is the working one
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    assert process.stdout is not None
    try:
        for line in process.stdout:
            log_file.write(line)
            log_file.flush()
            on_line(line)
        return process.wait()
    except BaseException:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise


class ProcessBackend(Backend):
    name = "process"
    embedded_storage = True

    def checks(self) -> list[Check]:
        found = importlib.util.find_spec("tensorflow") is not None
        return [
            Check(
                "tensorflow",
                found,
                "installed" if found else "TensorFlow is not installed in this Python",
                hint="Install the project into this Python: pip install -e .",
            )
        ]

    def train(self, job: TrainingJob) -> TrainingResult:
        base = job.run_dir.resolve() / "opt" / "ml"
        if base.exists():
            shutil.rmtree(base)
        s3 = storage.client(self.settings.region)
        channels: dict[str, Path] = {}
        for channel, uri in job.channels.items():
            local = base / contract.INPUT_DATA_PATH / channel
            local.mkdir(parents=True)
            storage.download(s3, storage.S3Uri.parse(uri), local)
            channels[channel] = local
        script = job.source_dir / job.entry_script
        command = entry_point_command(script, job.hyperparameters)
        log.info("Running the entry point: %s", " ".join(command[1:]))
        started = time.perf_counter()
        with job.log_path.open("a") as job_log:
            returncode = run_entry_point(
                script,
                base,
                channels,
                job.hyperparameters,
                job_log,
                on_line=lambda line: err.out(line.rstrip("\n"), highlight=False),
            )
        seconds = time.perf_counter() - started
        shutil.rmtree(base / "input" / "data", ignore_errors=True)
        if returncode != 0:
            raise TrainingFailed(
                failure_reason(
                    base / contract.FAILURE_PATH,
                    f"The entry point exited with status {returncode}.",
                ),
                hint=f"The full log is in {job.log_path}.",
            )

        result = upload_results(
            s3,
            job,
            base / contract.MODEL_PATH,
            base / contract.OUTPUT_DATA_PATH,
            base / contract.OUTPUT_PATH,
        )
        return replace(result, details={"entry_point_seconds": round(seconds, 3)})
