"""``process``: the entry point as a subprocess on this machine, in an emulated ``opt/ml``."""

from __future__ import annotations

import importlib.util
import shutil
import time
from dataclasses import replace
from pathlib import Path

from defects.backends.artifacts import failure_reason, upload_results
from defects.backends.base import Backend, Check, TrainingJob, TrainingResult
from defects.console import log
from defects.entrypoint import entry_point_command, run_entry_point
from defects.errors import TrainingFailed
from defects.progress import JobOutput
from defects.storage import S3Uri, Storage
from defects.storage.s3 import download
from defects.training import contract


class ProcessBackend(Backend):
    name = "process"

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

    def train(self, job: TrainingJob, store: Storage) -> TrainingResult:
        base = job.run_dir.resolve() / "opt" / "ml"
        if base.exists():
            shutil.rmtree(base)
        channels: dict[str, Path] = {}
        for channel, uri in job.channels.items():
            local = base / contract.INPUT_DATA_PATH / channel
            local.mkdir(parents=True)
            download(store.s3, S3Uri.parse(uri), local)
            channels[channel] = local
        script = job.source_dir / job.entry_script
        command = entry_point_command(script, job.hyperparameters)
        log.info("Running the entry point: %s", " ".join(command[1:]))
        started = time.perf_counter()
        with job.log_path.open("a") as job_log, JobOutput() as output:
            returncode = run_entry_point(
                script, base, channels, job.hyperparameters, job_log, on_line=output.feed
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
            store,
            job,
            base / contract.MODEL_PATH,
            base / contract.OUTPUT_DATA_PATH,
            base / contract.OUTPUT_PATH,
        )
        return replace(result, details={"entry_point_seconds": round(seconds, 3)})
