"""The benchmark suite, CI-sized: it runs and its report has the promised shape.

Timings are never asserted: they depend on the machine. Only the structure is: every
benchmark is in the report with its figures, ratio, target and whether the target is met.
The two benchmarks that need no model training run; the others must say why they did not.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.benchmark

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SELECTED = ("input", "staging", "reliability", "scale", "predict", "startup")
EVERY_KEY = (
    "input_pipeline",
    "training_throughput",
    "training_gflops",
    "staging",
    "restaging",
    "overhead_process",
    "overhead_local",
    "quality_synthetic",
    "quality_synthetic_60",
    "quality_synthetic_60_full",
    "quality_elpv",
    "quality_elpv_few",
    "mixed_precision",
    "reliability_faults",
    "reliability_kills",
    "reliability_process",
    "reliability_local",
    "scale_job_memory",
    "scale_entry_point_memory",
    "scale_streaming",
    "scale_staging",
    "predict",
    "startup",
)
RAN = (
    "input_pipeline",
    "staging",
    "restaging",
    "reliability_faults",
    "reliability_kills",
    "scale_job_memory",
    "scale_entry_point_memory",
    "scale_streaming",
    "scale_staging",
    "predict",
    "startup",
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("benchmarks")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--only",
            ",".join(SELECTED),
            "--out",
            str(root / "results"),
            "--data-dir",
            str(root / "data"),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return root / "results", completed.stdout


@pytest.fixture(scope="module")
def report(finished: tuple[Path, str]) -> dict[str, Any]:
    results, _ = finished
    document: dict[str, Any] = json.loads((results / "latest.json").read_text())
    return document


def test_the_report_is_kept_with_a_timestamp_and_as_latest(finished: tuple[Path, str]) -> None:
    results, _ = finished
    reports = list(results.glob("report-*.json"))
    assert len(reports) == 1
    assert reports[0].read_text() == (results / "latest.json").read_text()


def test_every_benchmark_is_in_the_report(report: dict[str, Any]) -> None:
    assert report["mode"] == "quick"
    assert [b["key"] for b in report["benchmarks"]] == list(EVERY_KEY)
    for benchmark in report["benchmarks"]:
        assert benchmark["title"]
        assert benchmark["target"]
        assert set(benchmark) >= {"figures", "ratio", "target", "met", "status"}


def test_the_benchmarks_that_ran_report_figures_ratio_and_verdict(report: dict[str, Any]) -> None:
    by_key = {b["key"]: b for b in report["benchmarks"]}
    for key in RAN:
        benchmark = by_key[key]
        assert benchmark["status"] == "ok", benchmark["reason"]
        assert benchmark["figures"]
        assert isinstance(benchmark["ratio"], float)
        assert benchmark["ratio_text"]
        assert isinstance(benchmark["met"], bool)
    assert by_key["input_pipeline"]["figures"]["source_width"] == 1920
    assert by_key["staging"]["figures"]["files"] == 120


def test_the_benchmarks_left_out_say_why(report: dict[str, Any]) -> None:
    for benchmark in report["benchmarks"]:
        if benchmark["key"] not in RAN:
            assert benchmark["status"] == "skipped"
            assert "--only" in benchmark["reason"]
            assert benchmark["met"] is None


def test_the_machine_and_its_estimated_peak_are_described(report: dict[str, Any]) -> None:
    assert report["machine"]["cores"] >= 1
    assert report["machine"]["peak_gflops_estimate"] > 0
    assert report["summary"]["met"] + report["summary"]["missed"] == len(RAN)


def test_the_table_is_printed(finished: tuple[Path, str]) -> None:
    _, table = finished
    assert "Input pipeline" in table
    assert "Re-staging" in table
    assert "objects byte-equal" in table
    assert "Start-up" in table
