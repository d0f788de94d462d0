"""Removing what jobs leave behind: job folders (``defects rm``), data that no job refers
to and copies a job folder does not need (``defects gc``).

Nothing outside the runs and data folders is ever removed: every target is resolved and
must lie strictly inside one of them, and a target that is itself a symbolic link is refused
(it could point anywhere). Folders are removed without following the links inside them.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from defects.console import log
from defects.dataset.manifest import load_manifest
from defects.errors import DataError, DefectsError
from defects.jobs import containers
from defects.jobs.listing import JobInfo, find_job, list_jobs
from defects.jobs.records import FINAL_STATES, RECORD_FILE, read_record, true_status
from defects.training import contract

# Copies of the fetched artifacts that a backend leaves in the job folder: the model and
# output of the emulated opt/ml tree (process) and of the container root (local). The job
# folder keeps model.tar.gz, output.tar.gz and model/; checkpoints stay, a job resumes from
# them.
BACKEND_COPIES = (
    "opt/ml/model",
    "opt/ml/output",
    "sm-*/model",
    f"sm-*/{contract.MODEL_ARCHIVE}",
    f"sm-*/{contract.OUTPUT_ARCHIVE}",
)
# A half-written dataset younger than this may still be in the making.
PARTIAL_GRACE_SECONDS = 3600.0


@dataclass(frozen=True)
class Removal:
    """One folder or file to remove, its size in bytes, and why it can go."""

    path: Path
    size: int
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "bytes": self.size, "reason": self.reason}


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def tree_size(path: Path) -> int:
    """Bytes under ``path``, counting links as links (never what they point at)."""
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size if path.exists() or path.is_symlink() else 0
    total = 0
    for folder, _dirs, files in os.walk(path, followlinks=False):
        for name in files:
            total += (Path(folder) / name).lstat().st_size
    return total


def inside(path: Path, roots: Sequence[Path]) -> Path:
    """``path`` resolved, if it is no link and lies strictly inside one of ``roots``."""
    if path.is_symlink():
        raise DataError(
            f"{path} is a symbolic link (to {os.readlink(path)}); it is not removed.",
            hint="Remove the link yourself if you mean to; defects never follows one.",
            headline="refused to remove a link",
        )
    resolved = path.resolve()
    for root in roots:
        base = root.resolve()
        if resolved != base and resolved.is_relative_to(base):
            return resolved
    raise DataError(
        f"{path} is outside {' and '.join(str(root) for root in roots)}; it is not removed.",
        hint="defects removes only job folders and data it made itself.",
        headline="refused to remove a path outside the tool's folders",
    )


def remove(removals: Iterable[Removal], roots: Sequence[Path]) -> int:
    """Remove each target (checked again just before); returns the bytes freed."""
    freed = 0
    for removal in removals:
        target = inside(removal.path, roots)
        if (target / RECORD_FILE).is_file():
            # A job's folder: what still runs of it (forced), or what its killed command
            # left stopped, goes first; it would go on writing into the folder.
            containers.stop(target)
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        freed += removal.size
    return freed


def backend_copies(run_dir: Path) -> list[Path]:
    """The backend's copies in a job folder whose artifacts have been fetched."""
    if not (run_dir / contract.MODEL_ARCHIVE).is_file() or not (run_dir / "model").is_dir():
        return []
    return sorted(path for pattern in BACKEND_COPIES for path in run_dir.glob(pattern))


def drop_backend_copies(run_dir: Path) -> None:
    """After a successful fetch, the backend's copies of the model and output can go."""
    for path in backend_copies(run_dir):
        try:
            remove([Removal(path, 0, "a copy")], [run_dir])
        except (OSError, DefectsError) as error:
            log.debug("Kept %s: %s", path, error)


def _job_removal(run_dir: Path, reason: str) -> Removal:
    return Removal(run_dir, tree_size(run_dir), reason)


def plan_rm(runs_dir: Path, jobs: Sequence[str], force: bool = False) -> list[Removal]:
    """The job folders ``jobs`` name; a running job is refused unless ``force``."""
    removals: list[Removal] = []
    for job in jobs:
        run_dir = find_job(runs_dir, job)
        if not run_dir.is_symlink() and not run_dir.is_dir():
            raise DataError(
                f"There is no job {job!r} in {runs_dir}.",
                hint="See `defects jobs` for the jobs there are.",
            )
        inside(run_dir, [runs_dir])
        status = true_status(read_record(run_dir), run_dir)
        if status in {"running", "detached", "orphaned"} and not force:
            raise DefectsError(
                f"Job {job} is {status}; its folder is still in use.",
                hint=f"Stop it first (`defects stop {job}`), or pass --force.",
                headline="refused to remove a running job",
            )
        removals.append(_job_removal(run_dir, f"job folder ({status})"))
    return removals


def _referenced_data(runs_dir: Path, leaving: set[Path]) -> tuple[set[Path], set[str]]:
    """The prepared datasets (folders and ids) and their source folders that the jobs which
    stay refer to."""
    folders: set[Path] = set()
    ids: set[str] = set()
    for job in list_jobs(runs_dir):
        if job.run_dir.resolve() in leaving:
            continue
        record = read_record(job.run_dir)
        if record.get("dataset_id"):
            ids.add(str(record["dataset_id"]))
        if record.get("dataset_root"):
            root = Path(str(record["dataset_root"])).resolve()
            folders.add(root)
            dataset = load_manifest(root) if root.is_dir() else None
            if dataset is not None and dataset.manifest.get("source"):
                folders.add(Path(str(dataset.manifest["source"])).resolve())
    return folders, ids


def _kept_trial(job: JobInfo) -> bool:
    """Whether ``job`` is a tuning job's trial with a model: one its tuner stopped early, or
    that ended after saving its model. It is one of its tuning job's results, ranked in its
    record, and goes only with the tuning job."""
    nested = "/" in job.name
    return nested and (
        (job.run_dir / contract.MODEL_ARCHIVE).is_file()
        or (job.run_dir / contract.MODEL_PATH / contract.KERAS_MODEL_FILE).is_file()
    )


def _data_folders(parent: Path) -> list[Path]:
    """The data folders in ``parent``, without their lock files (``.<name>.lock``): a lock
    is not data, and removing one that a job holds would let a second job build the same
    folder at the same time."""
    if not parent.is_dir():
        return []
    return sorted(
        path
        for path in parent.iterdir()
        if not (path.name.startswith(".") and path.name.endswith(".lock") and path.is_file())
    )


def _old(path: Path) -> bool:
    return time.time() - path.lstat().st_mtime > PARTIAL_GRACE_SECONDS


def plan_gc(runs_dir: Path, data_dir: Path, failed: bool = False) -> list[Removal]:
    """What ``defects gc`` removes: with ``failed`` the folders of failed, interrupted and
    stopped jobs (but not a tuning job's trials that have a model); the backends' copies in
    fetched jobs; and the synthetic and prepared data under ``data_dir`` that no remaining
    job refers to."""
    removals: list[Removal] = []
    for job in list_jobs(runs_dir):
        if failed and job.status in set(FINAL_STATES) - {"completed"} and not _kept_trial(job):
            removals.append(_job_removal(job.run_dir, f"job folder ({job.status})"))
            continue
        for copy in backend_copies(job.run_dir):
            removals.append(Removal(copy, tree_size(copy), "a copy of the fetched artifacts"))
    leaving = {removal.path.resolve() for removal in removals}
    folders, ids = _referenced_data(runs_dir, leaving)

    prepared = _data_folders(data_dir / "prepared")
    for folder in prepared:
        if folder.name.endswith(".partial") or folder.name.startswith(".converting-"):
            if _old(folder):
                removals.append(
                    Removal(folder, tree_size(folder), "left by an interrupted prepare")
                )
            continue
        dataset = load_manifest(folder) if folder.is_dir() and not folder.is_symlink() else None
        dataset_id = dataset.dataset_id if dataset is not None else folder.name
        if folder.resolve() in folders or dataset_id in ids:
            if dataset is not None and dataset.manifest.get("source"):
                folders.add(Path(str(dataset.manifest["source"])).resolve())
            continue
        removals.append(Removal(folder, tree_size(folder), "prepared data no job refers to"))

    synthetic = _data_folders(data_dir / "synthetic")
    for folder in synthetic:
        if folder.resolve() in folders:
            continue
        if not (folder / ".complete").exists() and not _old(folder):
            continue  # Still being drawn.
        removals.append(Removal(folder, tree_size(folder), "synthetic photos no job refers to"))
    return [removal for removal in removals if _removable(removal, [runs_dir, data_dir])]


def _removable(removal: Removal, roots: Sequence[Path]) -> bool:
    try:
        inside(removal.path, roots)
    except DataError as error:
        log.warning("%s", error.message)
        return False
    return True
