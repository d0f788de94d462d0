"""The benchmarks in the order they run, and running them so that one failure stops nothing."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks import (
    input_pipeline,
    overhead,
    predict,
    quality,
    reliability,
    scale,
    staging,
    startup,
    training,
)
from benchmarks.context import Context
from benchmarks.report import Result, failed, skipped

Runner = Callable[[Context, dict[str, Any]], list[Result]]


@dataclass(frozen=True)
class Benchmark:
    name: str
    # Result key -> title, and result key -> target: every result it reports, run or not.
    titles: Mapping[str, str]
    targets: Mapping[str, str]
    run: Runner


SUITE: tuple[Benchmark, ...] = (
    Benchmark(
        "input",
        input_pipeline.KEYS,
        input_pipeline.TARGETS,
        lambda context, machine: input_pipeline.run(context),
    ),
    Benchmark("training", training.KEYS, training.TARGETS, training.run),
    Benchmark(
        "staging", staging.KEYS, staging.TARGETS, lambda context, machine: staging.run(context)
    ),
    Benchmark(
        "overhead",
        {"overhead_process": overhead.KEYS["overhead_process"]},
        {"overhead_process": overhead.TARGETS["overhead_process"]},
        lambda context, machine: overhead.run_process(context),
    ),
    Benchmark(
        "overhead",
        {"overhead_local": overhead.KEYS["overhead_local"]},
        {"overhead_local": overhead.TARGETS["overhead_local"]},
        lambda context, machine: overhead.run_local(context),
    ),
    Benchmark(
        "quality", quality.KEYS, quality.TARGETS, lambda context, machine: quality.run(context)
    ),
    Benchmark(
        "reliability",
        reliability.KEYS,
        reliability.TARGETS,
        lambda context, machine: reliability.run(context),
    ),
    Benchmark("scale", scale.KEYS, scale.TARGETS, lambda context, machine: scale.run(context)),
    Benchmark(
        "predict", predict.KEYS, predict.TARGETS, lambda context, machine: predict.run(context)
    ),
    Benchmark(
        "startup", startup.KEYS, startup.TARGETS, lambda context, machine: startup.run(context)
    ),
)
NAMES: tuple[str, ...] = tuple(dict.fromkeys(benchmark.name for benchmark in SUITE))


def run_suite(
    context: Context, machine: dict[str, Any], only: Sequence[str] | None = None
) -> list[Result]:
    """Every benchmark's results; those left out by ``only`` or that raised say so."""
    results: list[Result] = []
    for benchmark in SUITE:
        if only and benchmark.name not in only:
            results += [
                skipped(key, benchmark.name, title, benchmark.targets[key], "not selected (--only)")
                for key, title in benchmark.titles.items()
            ]
            continue
        try:
            results += benchmark.run(context, machine)
        except Exception as error:  # noqa: BLE001 - one broken benchmark must not stop the rest.
            log_path = context.log_dir / f"{benchmark.name}-error.log"
            log_path.write_text(traceback.format_exc())
            reason = f"{type(error).__name__}: {error} (traceback in {log_path.name})"
            context.console.print(f"[red]{benchmark.name} failed[/]: {reason}", highlight=False)
            results += [
                failed(key, benchmark.name, title, benchmark.targets[key], reason)
                for key, title in benchmark.titles.items()
            ]
    return results
