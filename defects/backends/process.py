"""``process``: the entry point as a subprocess on this machine, in an emulated ``opt/ml``."""

from __future__ import annotations

import importlib.util
import shutil
import time
from dataclasses import replace
from pathlib import Path

from defects.backends.artifacts import training_failed, upload_results
from defects.backends.base import Backend, Check, TrainingJob, TrainingResult
from defects.backends.launcher import run_entry_point
from defects.console import log
from defects.console.live import JobOutput
from defects.jobs import containers
from defects.jobs.containers import process
from defects.jobs.records import container_tree
from defects.storage import S3Uri, Storage
from defects.storage.s3 import download, require_space
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
        base = container_tree(job.run_dir)
        # What an earlier attempt left goes, except its checkpoints: the next one resumes.
        for leftover in base.iterdir() if base.is_dir() else []:
            if leftover.name != contract.CHECKPOINTS_PATH:
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        channels: dict[str, Path] = {}
        # A dataset bigger than the disk is refused before any of it is downloaded.
        if job.channels:
            locations = [S3Uri.parse(uri) for uri in job.channels.values()]
            require_space(store.s3, locations, base / contract.INPUT_DATA_PATH)
        for channel, uri in job.channels.items():
            local = base / contract.INPUT_DATA_PATH / channel
            local.mkdir(parents=True)
            download(store.s3, S3Uri.parse(uri), local)
            channels[channel] = local
        script = job.source_dir / job.entry_script
        # The entry point prints its hyperparameters itself, under every backend.
        log.info("Running the entry point %s.", script)
        started = time.perf_counter()
        try:
            with job.log_path.open("a") as job_log, JobOutput() as output:
                returncode = run_entry_point(
                    script,
                    base,
                    channels,
                    job.hyperparameters,
                    job_log,
                    on_line=output.feed,
                    # Noted, so that a later command can tell whether it outlived this one.
                    on_start=lambda pid: containers.note(job.run_dir, entry_point=process(pid)),
                )
        finally:
            # The entry point has ended (run_entry_point stops it if this is interrupted).
            containers.forget(job.run_dir)
        seconds = time.perf_counter() - started
        shutil.rmtree(base / "input" / "data", ignore_errors=True)
        if returncode != 0:
            raise training_failed(
                base / contract.FAILURE_PATH,
                f"The entry point exited with status {returncode}.",
                job,
            )
        result = self.upload_pending(job, store)
        assert result is not None
        return replace(result, details={"entry_point_seconds": round(seconds, 3)})

    def upload_pending(self, job: TrainingJob, store: Storage) -> TrainingResult | None:
        base = container_tree(job.run_dir)
        if not (base / contract.MODEL_PATH / contract.KERAS_MODEL_FILE).is_file():
            return None
        return upload_results(
            store,
            job,
            base / contract.MODEL_PATH,
            base / contract.OUTPUT_DATA_PATH,
            base / contract.OUTPUT_PATH,
        )
