"""Errors a user can act on.

Every error the tool raises on purpose is a ``DefectsError``: a one-line headline, a
paragraph that says what happened, and a hint that says how to fix it. The CLI prints the
three and exits with ``exit_code``; anything else is an internal error and gets a traceback.

    DefectsError
    ├── ConfigError          bad setting, flag or environment value (exit 2)
    ├── JobNotFound          no job folder or model by that name
    ├── DataError            missing folder, empty class, unreadable or too few images
    │   └── UnsafeArchive    archive refused: a link, an unsafe name, too big, or unreadable
    ├── StorageError         S3 unreachable, bucket missing, checksum mismatch
    │   └── ResultsPending   trained, but the results were not uploaded or fetched: kept
    ├── BackendError         a backend cannot run here (no Docker, no credentials, no role)
    │   └── NotAvailable     the backend is known but not usable in this installation (exit 2)
    ├── TrainingFailed       the entry point exited non-zero; carries its failure reason
    │   ├── TrainingInterrupted  stopped by a signal (spot reclaim, SIGTERM): resumable
    │   └── MetricNotFound   a tuning metric definition matched no line of a trial's log
    ├── NotConfirmed         a paid launch above the confirmation threshold was not confirmed
    └── DiskError            the disk is full, read-only or not ours to write (from an OSError)
"""

from __future__ import annotations

import errno


class DefectsError(Exception):
    headline = "defects failed"
    exit_code = 1

    def __init__(self, message: str, hint: str = "", headline: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if headline is not None:
            self.headline = headline

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class ConfigError(DefectsError):
    headline = "invalid configuration"
    exit_code = 2


class JobNotFound(DefectsError):
    headline = "no such job"


class DataError(DefectsError):
    headline = "problem with the input data"


class UnsafeArchive(DataError):
    headline = "archive refused"


class StorageError(DefectsError):
    headline = "S3 storage problem"


class ResultsPending(StorageError):
    headline = "the model was trained, but its results were not saved"


class BackendError(DefectsError):
    headline = "the training backend cannot run"


class NotAvailable(BackendError):
    headline = "backend not available"
    exit_code = 2


class TrainingFailed(DefectsError):
    headline = "training failed"


class TrainingInterrupted(TrainingFailed):
    headline = "training was interrupted"


class MetricNotFound(TrainingFailed):
    headline = "a metric definition does not match the log"


class NotConfirmed(DefectsError):
    headline = "launch not confirmed"


class DiskError(DefectsError):
    headline = "cannot write to the disk"


DISK_FULL_HEADLINE = "the disk is full"
DISK_FULL_HINT = (
    "Free some space: `defects gc` removes data no job needs, `defects rm JOB` a job's "
    "folder, `df -h` shows what is free; or work in a folder on a larger disk (the job "
    "folders go to --runs-dir or DEFECTS_RUNS_DIR)."
)
_FREE_SPACE_HINT = f"{DISK_FULL_HINT} Then run the command again."
_PERMISSION_HINT = (
    "Run the command in a folder you can write to, or point --runs-dir (DEFECTS_RUNS_DIR) there."
)
_IN_THE_WAY_HINT = (
    "A path given to the command, or a folder on the way to it, is a file where a folder "
    "must be (or the reverse): choose another path, or move what is there."
)
# The operating system's errors that are about the machine or its paths, not about
# defects: the user can fix them, so they get a message and a hint instead of a traceback.
_OS_ERRORS = {
    errno.ENOSPC: (DISK_FULL_HEADLINE, "No space left on the device", _FREE_SPACE_HINT),
    errno.EDQUOT: ("the disk quota is used up", "Disk quota exceeded", _FREE_SPACE_HINT),
    errno.EROFS: ("the disk is read-only", "The file system is read-only", _PERMISSION_HINT),
    errno.EACCES: ("permission denied", "Permission denied", _PERMISSION_HINT),
    # A path given on the command line (--out, --runs-dir...) with something in the way.
    errno.ENOTDIR: ("a file is in the way", "Not a folder", _IN_THE_WAY_HINT),
    errno.EEXIST: (
        "a file is in the way",
        "It exists already",
        _IN_THE_WAY_HINT,
    ),
    errno.EISDIR: (
        "a folder is in the way",
        "It is a folder, where a file is written",
        _IN_THE_WAY_HINT,
    ),
}
# The headlines of the errors that say a disk is full.
_FULL_HEADLINES = (_OS_ERRORS[errno.ENOSPC][0], _OS_ERRORS[errno.EDQUOT][0])


def from_os_error(error: OSError) -> DefectsError | None:
    """The error to show for an ``OSError`` about the machine (disk full, read-only,
    permission denied), or None for any other (a bug's, kept with its traceback)."""
    known = _OS_ERRORS.get(error.errno or 0)
    if known is None:
        return None
    headline, what, hint = known
    # A copy or a move names its source first and its destination, where it writes, second.
    where = error.filename2 or error.filename or ""
    message = f"{what}: {where}." if where else f"{what}."
    return DiskError(message, hint=hint, headline=headline)


def disk_full(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from, is a full disk: what no next trial
    or retry can pass."""
    from defects.training.interruption import causes

    return any(
        (isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT))
        or (isinstance(cause, DefectsError) and cause.headline in _FULL_HEADLINES)
        for cause in causes(error)
    )
