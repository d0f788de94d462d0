"""Three ``defects run`` commands started at once in a fresh folder: they share the drawn
photos, the prepared dataset and its shards, and every one of them succeeds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from defects.testing.concurrent_runs import finish, start_runs

JOBS = ("first", "second", "third")
# The network from scratch: these tests are of jobs sharing a folder, not of a network.
TINY = [
    *("--per-class", "4", "--epochs", "1", "--image-size", "40x24", "--batch-size", "8"),
    *("--model", "scratch"),
]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[int, str]]]:
    folder = tmp_path_factory.mktemp("fresh")
    environment = {**os.environ, "DEFECTS_BACKEND": "process"}
    finished = finish(folder, start_runs(folder, JOBS, TINY, environment), timeout=600)
    return folder, finished


def test_three_process_jobs_started_at_once_in_a_fresh_folder_all_succeed(
    outcomes: tuple[Path, dict[str, tuple[int, str]]],
) -> None:
    folder, finished = outcomes
    for name, (returncode, output) in finished.items():
        assert returncode == 0, output[-3000:]
        assert "Traceback" not in output
        record = json.loads((folder / "runs" / name / "job.json").read_text())
        assert record["status"] == "completed"


def test_the_jobs_drew_prepared_and_packed_the_data_once(
    outcomes: tuple[Path, dict[str, tuple[int, str]]],
) -> None:
    folder, finished = outcomes
    outputs = [output for _, output in finished.values()]
    assert sum("Drew 16 synthetic photos" in output for output in outputs) == 1
    assert sum("Reusing synthetic data" in output for output in outputs) == 2
    drawn = [p.name for p in (folder / "data" / "synthetic").iterdir()]
    assert sorted(drawn) == [".n4-s0-640x360.lock", "n4-s0-640x360"]
    prepared = [p for p in (folder / "data" / "prepared").iterdir() if p.is_dir()]
    assert len(prepared) == 1
    records = [json.loads((folder / "runs" / n / "job.json").read_text()) for n in JOBS]
    assert {record["dataset_id"] for record in records} == {prepared[0].name}


def test_four_more_rounds_in_fresh_folders_all_succeed(
    tmp_path: Path, outcomes: tuple[Path, dict[str, tuple[int, str]]]
) -> None:
    # With the round above, five rounds of three jobs at once, each in a fresh folder.
    environment = {**os.environ, "DEFECTS_BACKEND": "process"}
    for round_number in range(2, 6):
        folder = tmp_path / f"round-{round_number}"
        folder.mkdir()
        finished = finish(folder, start_runs(folder, JOBS, TINY, environment), timeout=600)
        for name, (returncode, output) in finished.items():
            assert returncode == 0, (round_number, name, output[-3000:])
            assert "Traceback" not in output
