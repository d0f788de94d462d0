"""The process backend's runner: how the entry point is started, fed and stopped."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from defects.backends.launcher import run_entry_point
from defects.training import contract

# Prints what it was given, one line per fact, then exits with the status it was asked for.
_SCRIPT = """
import json, os, sys
print("args " + " ".join(sys.argv[1:]))
print("cwd " + os.getcwd())
print("aws " + json.dumps(sorted(k for k in os.environ if k.startswith("AWS_"))))
print("train " + os.environ["SM_CHANNEL_TRAIN"])
sys.exit(int(os.environ.get("EXIT_WITH", "0")))
"""

_SLEEPER = """
import os, time
print(os.getpid(), flush=True)
time.sleep(600)
"""


def _script(tmp_path: Path, text: str) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    script = source / "entry.py"
    script.write_text(text)
    return script


def test_the_entry_point_gets_the_contract_and_no_aws_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
    script = _script(tmp_path, _SCRIPT)
    base = tmp_path / "opt" / "ml"
    channel = tmp_path / "train"
    seen: list[str] = []
    log = io.StringIO()

    hyperparameters = {"epochs": 2, "augment": False}
    status = run_entry_point(script, base, {"train": channel}, hyperparameters, log, seen.append)

    assert status == 0
    assert seen[0] == "args --augment false --epochs 2\n"
    assert seen[1] == f"cwd {script.parent}\n"
    assert json.loads(seen[2].split(" ", 1)[1]) == []
    assert seen[3] == f"train {channel}\n"
    assert log.getvalue() == "".join(seen)
    for sub_path in (contract.MODEL_PATH, contract.OUTPUT_DATA_PATH, contract.CHECKPOINTS_PATH):
        assert (base / sub_path).is_dir()


def test_the_exit_status_is_returned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXIT_WITH", "3")
    script = _script(tmp_path, _SCRIPT)
    status = run_entry_point(
        script, tmp_path / "opt" / "ml", {"train": tmp_path}, {}, io.StringIO()
    )
    assert status == 3


def test_an_interruption_stops_the_entry_point(tmp_path: Path) -> None:
    script = _script(tmp_path, _SLEEPER)
    pids: list[int] = []

    def interrupt(line: str) -> None:
        pids.append(int(line))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_entry_point(
            script,
            tmp_path / "opt" / "ml",
            {"train": tmp_path},
            {},
            io.StringIO(),
            interrupt,
        )
    # The child was stopped and reaped, not left sleeping.
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)
