"""What every backend does with a finished job's files: pack them the SageMaker way, read
the failure reason, and put the archives at the job's output keys."""

from __future__ import annotations

import tarfile
from pathlib import Path

from defects.backends.base import TrainingJob, TrainingResult
from defects.storage import Storage
from defects.storage.s3 import upload_file
from defects.training import contract


def pack(directory: Path, archive: Path) -> Path:
    """A SageMaker-style archive: the folder's contents at the archive's root."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(directory.iterdir()) if directory.is_dir() else []:
            tar.add(path, arcname=path.name)
    return archive


def failure_reason(failure_file: Path, fallback: str) -> str:
    if failure_file.is_file():
        text = failure_file.read_text(errors="replace").strip()
        if text:
            return text
    return fallback


def upload_results(
    store: Storage, job: TrainingJob, model_dir: Path, output_data_dir: Path, work_dir: Path
) -> TrainingResult:
    """Pack ``model_dir`` and ``output_data_dir`` and upload them to the job's output."""
    output = store.layout.job_output(job.name)
    for folder, name in (
        (model_dir, contract.MODEL_ARCHIVE),
        (output_data_dir, contract.OUTPUT_ARCHIVE),
    ):
        archive = pack(folder, work_dir / name)
        upload_file(store.s3, archive, output.join(name))
    return TrainingResult(
        job_name=job.name,
        model_uri=str(output.join(contract.MODEL_ARCHIVE)),
        output_uri=str(output.join(contract.OUTPUT_ARCHIVE)),
    )
