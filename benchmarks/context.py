"""What every benchmark gets: the sizes to run at and where to put data, work and logs."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

import defects
from defects.training import contract


def _default(function: object, name: str) -> int:
    value = inspect.signature(function).parameters[name].default  # type: ignore[arg-type]
    return int(value)


@dataclass(frozen=True)
class Sizes:
    # Input pipeline: full-size JPEGs decoded once, and how often each side is timed (best of).
    input_images: int
    input_repeats: int
    # Training throughput: synthetic photos per class, epochs (the first decodes) and rounds
    # (the entry point and the baseline take turns).
    throughput_per_class: int
    throughput_epochs: int
    throughput_rounds: int
    # Staging: files uploaded (the public dataset has 1,220).
    staging_files: int
    # Backend overhead: a tiny job.
    overhead_per_class: int
    overhead_epochs: int


def full_sizes() -> Sizes:
    return Sizes(
        input_images=200,
        input_repeats=2,
        throughput_per_class=_default(defects.run, "per_class"),
        throughput_epochs=6,
        throughput_rounds=3,
        staging_files=1200,
        overhead_per_class=6,
        overhead_epochs=2,
    )


def quick_sizes() -> Sizes:
    return Sizes(
        input_images=24,
        input_repeats=1,
        throughput_per_class=12,
        throughput_epochs=3,
        throughput_rounds=1,
        staging_files=120,
        overhead_per_class=6,
        overhead_epochs=1,
    )


@dataclass(frozen=True)
class Context:
    quick: bool
    sizes: Sizes
    # Cached synthetic photos (reused between runs).
    data_dir: Path
    # Scratch space for this run (job folders, opt/ml trees); removed afterwards.
    work_dir: Path
    # One log file per job or subprocess, kept with the report.
    log_dir: Path
    with_local: bool
    # Progress messages go to stderr; the table goes to stdout.
    console: Console

    @property
    def synthetic_size(self) -> tuple[int, int]:
        """The width and height ``defects run`` draws its synthetic photos at."""
        return _default(defects.synthesize, "width"), _default(defects.synthesize, "height")

    @property
    def synthetic_image_size(self) -> str:
        """The input size ``image_size=auto`` picks for those photos (``384x216``): speed
        benchmarks name it, so that they time the same work whatever the default says."""
        return contract.image_size_text(contract.auto_image_shape([self.synthetic_size]))

    def say(self, message: str) -> None:
        self.console.print(f"[dim]{message}[/]", highlight=False)
