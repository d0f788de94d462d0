"""The benchmarks' arithmetic and bookkeeping, without running a benchmark."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from benchmarks import machine, suite
from benchmarks.__main__ import parse_arguments
from benchmarks.context import Context, quick_sizes
from benchmarks.entrypoint import epoch_seconds, fit_start
from benchmarks.report import Result, report_document, write_report

CPUINFO = """processor\t: 0
model name\t: Example CPU
cpu MHz\t\t: 2000.000
flags\t\t: fpu sse2 avx avx2 fma
processor\t: 1
model name\t: Example CPU
cpu MHz\t\t: 2000.000
flags\t\t: fpu sse2 avx avx2 fma
"""


def test_epochs_run_from_one_epoch_line_to_the_next_and_the_last_to_the_fit_end() -> None:
    lines = [
        (10.0, "Training default on 56 images ...\n"),
        (11.0, "Epoch 1/3\n"),
        (15.0, "2/2 - 4s - accuracy: 0.5\n"),
        (16.0, "Epoch 2/3\n"),
        (19.0, "Epoch 3/3\n"),
    ]
    assert epoch_seconds(lines, fit_seconds=12.0) == [5.0, 3.0, 3.0]


def test_epochs_come_from_the_progress_lines_when_there_are_some() -> None:
    lines = [
        (11.0, 'defects-progress {"event": "step", "epoch": 1, "elapsed": 0.5}\n'),
        (15.0, 'defects-progress {"event": "epoch", "epoch": 1, "elapsed": 4.0}\n'),
        (15.1, "Epoch 1/2 - 4s - loss: 1.0000\n"),
        (18.0, 'defects-progress {"event": "epoch", "epoch": 2, "elapsed": 6.5}\n'),
    ]
    assert epoch_seconds(lines, fit_seconds=7.0) == [4.0, 2.5]


def test_fit_starts_at_the_training_line() -> None:
    lines = [(2.0, "WARNING: TensorFlow\n"), (7.5, "Training article on 8 images\n")]
    assert fit_start(lines) == 7.5
    assert fit_start(lines[:1]) is None


def test_without_the_training_line_the_last_epoch_is_left_out() -> None:
    lines = [(1.0, "Epoch 1/2\n"), (4.0, "Epoch 2/2\n")]
    assert epoch_seconds(lines, fit_seconds=9.0) == [3.0]


def test_a_single_epoch_has_no_epoch_lines_to_time() -> None:
    assert epoch_seconds([(0.0, "Training default\n")], fit_seconds=3.0) == []


@pytest.mark.parametrize(
    ("flags", "expected"),
    [({"avx512f", "avx2", "fma"}, 64), ({"avx2", "fma"}, 32), ({"avx"}, 16), (set(), 8)],
)
def test_flops_per_cycle_follow_the_widest_vector_unit(flags: set[str], expected: int) -> None:
    assert machine.flops_per_cycle(flags) == expected


def test_peak_is_cores_times_clock_times_flops_per_cycle() -> None:
    described = machine.describe(CPUINFO, cores=2)
    assert described["peak_gflops_estimate"] == 2 * 2.0 * 32
    assert described["vector_units"] == "AVX2+FMA"
    assert described["avx512"] is False
    assert "estimate" in described["summary"]


def test_flops_count_conv_and_dense_layers_from_their_shapes() -> None:
    import keras

    from benchmarks.flops import forward_flops_per_image, training_flops_per_image

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(2)(x)
    model = keras.Model(inputs, outputs)
    conv = 2 * 8 * 8 * (3 * 3 * 3 * 4)
    dense = 2 * (8 * 8 * 4) * 2
    assert forward_flops_per_image(model) == conv + dense
    assert training_flops_per_image(model) == 3 * (conv + dense)


def _results() -> list[Result]:
    return [
        Result("a", "x", "A", ratio=3.5, ratio_text="3.50x", target=">= 3x", met=True),
        Result("b", "x", "B", ratio=float("nan"), target=">= 1x", met=False),
        Result("c", "y", "C", target="none", figures={"value": float("inf")}),
        Result("d", "z", "D", target=">= 5x", status="skipped", reason="not selected"),
    ]


def test_the_report_counts_outcomes_and_holds_only_valid_json() -> None:
    document = report_document(_results(), {"summary": "m"}, "quick", "now", 1.0)
    assert document["summary"] == {
        "met": 1,
        "missed": 1,
        "informational": 1,
        "skipped": 1,
        "failed": 0,
    }
    text = json.dumps(document, allow_nan=False)
    benchmarks = json.loads(text)["benchmarks"]
    assert [b["key"] for b in benchmarks] == ["a", "b", "c", "d"]
    assert benchmarks[1]["ratio"] is None
    assert benchmarks[2]["figures"]["value"] is None


def test_the_report_is_written_with_a_timestamp_and_as_latest(tmp_path: Path) -> None:
    document = report_document(_results(), {}, "full", "now", 1.0)
    path = write_report(document, tmp_path / "results", "20260101-000000")
    assert path.name == "report-20260101-000000.json"
    assert (tmp_path / "results" / "latest.json").read_text() == path.read_text()


def test_only_accepts_known_benchmark_names() -> None:
    assert parse_arguments(["--only", "input,staging"]).only == ["input", "staging"]
    with pytest.raises(SystemExit):
        parse_arguments(["--only", "input,nope"])


def test_every_benchmark_reports_even_when_left_out_or_broken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def works(context: Context, described: dict[str, Any]) -> list[Result]:
        return [Result("one", "good", "One", ratio=1.0, target=">= 1x", met=True)]

    def breaks(context: Context, described: dict[str, Any]) -> list[Result]:
        raise RuntimeError("no luck")

    monkeypatch.setattr(
        suite,
        "SUITE",
        (
            suite.Benchmark("good", {"one": "One"}, {"one": ">= 1x"}, works),
            suite.Benchmark("bad", {"two": "Two"}, {"two": ">= 2x"}, breaks),
            suite.Benchmark("unwanted", {"three": "Three"}, {"three": ">= 3x"}, works),
        ),
    )
    context = Context(
        quick=True,
        sizes=quick_sizes(),
        data_dir=tmp_path,
        work_dir=tmp_path,
        log_dir=tmp_path,
        with_local=False,
        console=Console(file=open(tmp_path / "console.txt", "w")),  # noqa: SIM115
    )
    results = suite.run_suite(context, {}, only=["good", "bad"])
    assert [(r.key, r.status) for r in results] == [
        ("one", "ok"),
        ("two", "failed"),
        ("three", "skipped"),
    ]
    assert "no luck" in results[1].reason
    assert results[1].target == ">= 2x"
    assert (tmp_path / "bad-error.log").is_file()
    assert results[2].met is None
    assert not math.isnan(results[0].ratio or 0.0)


def test_elpv_accuracy_is_counted_per_expert_rating_with_the_folder_as_truth() -> None:
    from benchmarks.elpv import accuracy_by_rating

    ratings = {"a.png": 0.0, "b.png": 0.0, "c.png": 1.0, "d.png": 2 / 3, "e.png": 1 / 3}
    predictions = [
        (Path("test/functional/a.png"), "functional"),
        (Path("test/functional/b.png"), "defective"),
        (Path("test/defective/c.png"), "defective"),
        (Path("test/defective/d.png"), "functional"),
        (Path("test/functional/e.png"), None),  # unreadable: counted as wrong
        (Path("test/functional/unknown.png"), "functional"),  # not an ELPV cell: left out
    ]
    assert accuracy_by_rating(predictions, ratings) == {
        "0.00": {"correct": 1, "cells": 2, "accuracy": 0.5},
        "0.33": {"correct": 0, "cells": 1, "accuracy": 0.0},
        "0.67": {"correct": 0, "cells": 1, "accuracy": 0.0},
        "1.00": {"correct": 1, "cells": 1, "accuracy": 1.0},
    }
