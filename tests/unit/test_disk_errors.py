"""A full, read-only or forbidden disk: a message and a hint instead of a traceback, records
that stay whole, checkpoints without half-written files, and a job that resumes."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from defects.backends import artifacts
from defects.backends.base import TrainingJob
from defects.errors import DataError, DiskError, TrainingFailed, disk_full, from_os_error
from defects.jobs import records as jobs
from defects.pipeline import lifecycle
from defects.training import contract
from tests.cli import run_cli


def _full(filename: str | None = None) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)


@pytest.mark.parametrize(
    ("error", "headline", "message"),
    [
        (
            _full("runs/a/job.log"),
            "the disk is full",
            "No space left on the device: runs/a/job.log.",
        ),
        (_full(), "the disk is full", "No space left on the device."),
        (
            OSError(errno.EDQUOT, "Disk quota exceeded", "data/x.png"),
            "the disk quota is used up",
            "Disk quota exceeded: data/x.png.",
        ),
        (
            OSError(errno.EROFS, "Read-only file system", "runs/job"),
            "the disk is read-only",
            "The file system is read-only: runs/job.",
        ),
        (
            OSError(errno.EACCES, "Permission denied", "runs"),
            "permission denied",
            "Permission denied: runs.",
        ),
        (
            OSError(errno.ENOTDIR, "Not a directory", "notes.txt/out"),
            "a file is in the way",
            "Not a folder: notes.txt/out.",
        ),
        (
            OSError(errno.EEXIST, "File exists", "out"),
            "a file is in the way",
            "It exists already: out.",
        ),
    ],
)
def test_errors_of_the_machine_become_messages(error: OSError, headline: str, message: str) -> None:
    known = from_os_error(error)
    assert isinstance(known, DiskError)
    assert (known.headline, known.message) == (headline, message)
    assert known.hint


def test_a_copy_names_the_file_it_could_not_write_not_its_source() -> None:
    error = OSError(errno.ENOSPC, "No space left on device", "photos/a.png")
    error.filename2 = "data/prepared/x.partial/a.png"
    known = from_os_error(error)
    assert known is not None
    assert known.message == "No space left on the device: data/prepared/x.partial/a.png."


@pytest.mark.parametrize("code", [errno.ENOENT, errno.EINVAL, errno.EBADF, None])
def test_other_os_errors_stay_internal_errors(code: int | None) -> None:
    error = OSError(code, "something") if code is not None else OSError("something")
    assert from_os_error(error) is None


def test_a_full_disk_is_a_message_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: Path, data: bytes) -> int:
        raise _full()

    monkeypatch.setattr(Path, "write_bytes", full)
    code, _, err = run_cli("synth", str(tmp_path / "photos"), "--per-class", "1")
    assert code == 1
    assert "error: the disk is full" in err
    assert "`defects gc` removes data no job needs" in err
    assert "Traceback" not in err and "internal error" not in err


def test_another_os_error_is_still_reported_as_internal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Path, data: bytes) -> int:
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(Path, "write_bytes", broken)
    code, _, err = run_cli("synth", str(tmp_path / "photos"), "--per-class", "1")
    assert code == 1
    assert "internal error" in err and "Traceback" in err


def test_a_record_that_cannot_be_written_stays_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs.write_record(tmp_path, {"status": "running"})

    def full(self: Path, target: Any) -> Path:
        raise _full()

    monkeypatch.setattr(Path, "replace", full)
    with pytest.raises(OSError):
        jobs.write_record(tmp_path, {"status": "failed"})
    assert json.loads((tmp_path / jobs.RECORD_FILE).read_text()) == {"status": "running"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [jobs.RECORD_FILE]


def test_a_held_job_reports_what_ended_it_even_when_its_record_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = []

    def write_once(run_dir: Path, record: dict[str, Any]) -> None:
        if written:
            raise _full()
        written.append(record)
        jobs.write_record(run_dir, record)

    monkeypatch.setattr(lifecycle, "write_record", write_once)
    held = lifecycle.held(tmp_path, {"status": "running"})
    with pytest.raises(RuntimeError, match="the job's own error"), held:
        raise RuntimeError("the job's own error")
    assert jobs.read_record(tmp_path)["status"] == "running"


def _job(tmp_path: Path) -> TrainingJob:
    return TrainingJob("defects-1", {}, {}, tmp_path, source_dir=tmp_path / "code")


def test_an_entry_point_stopped_by_a_full_disk_says_so_and_how_to_go_on(tmp_path: Path) -> None:
    failure = tmp_path / "failure"
    failure.write_text(f"{contract.DISK_FULL_REASON}: the checkpoints need space.\n")
    error = artifacts.training_failed(
        failure, "The entry point exited with status 1.", _job(tmp_path)
    )
    assert error.headline == "the disk is full"
    assert error.message == f"{contract.DISK_FULL_REASON}: the checkpoints need space."
    assert "`defects train --resume defects-1` continues it" in error.hint


@pytest.mark.parametrize(("free", "full"), [(3_000_000, True), (50_000_000_000, False)])
def test_an_entry_point_that_died_without_a_word_on_a_full_disk_is_told_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, free: int, full: bool
) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1, 1, free))  # type: ignore[attr-defined]
    fallback = "The entry point exited with status 1."
    error = artifacts.training_failed(tmp_path / "failure", fallback, _job(tmp_path))
    assert (error.headline == "the disk is full") == full
    assert error.message.startswith(fallback)
    assert ("3.0 MB free" in error.message) == full


def test_a_checkpoint_that_cannot_be_saved_leaves_the_last_one_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras

    from defects.training import checkpoints

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(optimizer="adam", loss="mse")
    saver = checkpoints.EpochCheckpoint(tmp_path, checkpoints.ResumeState())
    saver.set_model(model)
    saver.on_epoch_end(0, {"loss": 1.0})

    def half_then_full(path: Any, *args: Any, **kwargs: Any) -> None:
        Path(path).write_bytes(b"half a model")
        raise _full()

    monkeypatch.setattr(model, "save", half_then_full)
    with pytest.raises(OSError):
        saver.on_epoch_end(1, {"loss": 0.5})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model-0.keras", "state.json"]
    state = checkpoints.read_state(tmp_path)
    assert state is not None and state.epoch == 1 and state.history == {"loss": [1.0]}


def _disk_full_in_python() -> None:
    try:
        raise _full("/opt/ml/model/model.keras")
    except OSError as error:
        raise RuntimeError("Keras could not save the model") from error


def _disk_full_in_tensorflow() -> None:
    # What TensorFlow raises when SaveV2 cannot write (its message, not an OSError).
    raise RuntimeError(
        "{{function_node __wrapped__SaveV2}} .../variables_temp/part-00000-of-00001"
        ".data-00000-of-00001.tempstate123; No space left on device"
    )


@pytest.mark.parametrize("failing", [_disk_full_in_python, _disk_full_in_tensorflow])
def test_the_entry_point_stopped_by_a_full_disk_says_why_without_a_traceback(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    failing: Any,
) -> None:
    from defects.training import interruption, train

    monkeypatch.setenv(contract.BASE_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(interruption, "install", lambda: None)
    monkeypatch.setattr(train, "train", lambda arguments: failing())
    assert train.main(["--epochs", "1"]) == 1
    reason = (tmp_path / contract.FAILURE_PATH).read_text()
    assert reason.startswith(contract.DISK_FULL_REASON)
    err = capsys.readouterr().err
    assert err.startswith(f"error: {contract.DISK_FULL_REASON}")
    assert "Traceback" not in err


def _raised_from(error: BaseException, cause: BaseException) -> BaseException:
    try:
        raise error from cause
    except BaseException as raised:  # noqa: BLE001
        return raised


@pytest.mark.parametrize(
    ("error", "full"),
    [
        (_full(), True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
        (_raised_from(DataError("Could not extract model.tar.gz"), _full()), True),
        (TrainingFailed("No space left on the device", headline="the disk is full"), True),
        (DataError("Could not extract model.tar.gz: it is not a tar archive."), False),
        (OSError(errno.EACCES, "Permission denied"), False),
        (TrainingFailed("The entry point exited with status 2."), False),
    ],
)
def test_a_full_disk_is_told_through_the_errors_wrapped_around_it(
    error: BaseException, full: bool
) -> None:
    assert disk_full(error) == full


def test_data_bigger_than_the_disk_is_refused_before_any_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from defects.errors import DiskError
    from defects.storage import Layout, S3Uri, open_embedded
    from defects.storage.s3 import require_space

    with open_embedded(Layout("defects", "defects"), "us-east-1") as store:
        store.s3.create_bucket(Bucket="big")
        store.s3.put_object(Bucket="big", Key="data/train/part-00000.tar", Body=b"x" * 4_000_000)
        monkeypatch.setattr(
            shutil,
            "disk_usage",
            lambda path: shutil._ntuple_diskusage(1, 1, 1_000_000),  # type: ignore[attr-defined]
        )
        target = tmp_path / "opt" / "ml" / "input" / "data"
        with pytest.raises(DiskError) as caught:
            require_space(store.s3, [S3Uri("big", "data/train")], target)
        monkeypatch.undo()
        require_space(store.s3, [S3Uri("big", "data/train")], target)  # Fits a real disk.
    assert caught.value.message == (
        f"The job's data is 4.0 MB, and the disk of {target} has 1.0 MB free: it would not fit."
    )
    assert "--input-mode fastfile" in caught.value.hint
    assert not target.exists()
