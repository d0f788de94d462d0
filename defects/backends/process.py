"""``process``: the entry point as a subprocess on this machine, in an emulated ``opt/ml``."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from defects import storage
from defects.backends.artifacts import failure_reason, upload_results
from defects.backends.base import Backend, Check, TrainingJob, TrainingResult
from defects.console import err, log
from defects.errors import TrainingFailed
from defects.training import contract


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
        for sub_path in (contract.MODEL_PATH, contract.OUTPUT_DATA_PATH, contract.CHECKPOINTS_PATH):
            (base / sub_path).mkdir(parents=True, exist_ok=True)

        environment = {
            name: value
            for name, value in os.environ.items()
            # The entry point never talks to AWS: it gets no endpoint and no credentials.
            if not name.startswith("AWS_")
        }
        environment.update(contract.job_environment(base, channels, job.hyperparameters))
        environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        environment["PYTHONUNBUFFERED"] = "1"
        command = [
            sys.executable,
            str(job.source_dir / job.entry_script),
            *contract.hyperparameter_arguments(job.hyperparameters),
        ]
        log.info("Running the entry point: %s", " ".join(command[1:]))
        started = time.perf_counter()
        with job.log_path.open("a") as job_log:
            process = subprocess.Popen(
                command,
                cwd=job.source_dir,
                env=environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
            assert process.stdout is not None
            try:
                for line in process.stdout:
                    job_log.write(line)
                    err.out(line.rstrip("\n"), highlight=False)
                returncode = process.wait()
            except KeyboardInterrupt:
                process.terminate()
                process.wait(timeout=30)
                raise
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
