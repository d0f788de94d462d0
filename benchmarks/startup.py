"""How long ``defects --help`` and ``defects config`` take, from a fresh interpreter, against
importing what the command line used to import before it answered (``defects.pipeline``
and scikit-learn, boto3 and PIL with it)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from benchmarks.context import Context
from benchmarks.report import Result, times

KEYS = {"startup": "Start-up: defects --help and defects config"}
TARGETS = {"startup": "<= 0.5 s each (median)"}
TARGET_SECONDS = 0.5
EAGER_IMPORTS = "import defects.pipeline, sklearn.model_selection, PIL.Image"


def _median_seconds(arguments: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, *arguments], capture_output=True, check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def run(context: Context) -> list[Result]:
    runs = 3 if context.quick else 7
    context.say(f"start-up: {runs} runs each of defects --help, defects config and the baseline")
    help_seconds = _median_seconds(["-m", "defects", "--help"], runs)
    config_seconds = _median_seconds(["-m", "defects", "config"], runs)
    eager_seconds = _median_seconds(["-c", EAGER_IMPORTS], runs)
    bare_seconds = _median_seconds(["-c", "pass"], runs)
    slowest = max(help_seconds, config_seconds)
    ratio = eager_seconds / slowest
    return [
        Result(
            key="startup",
            benchmark="startup",
            title=KEYS["startup"],
            measured=f"--help {help_seconds:.2f} s, config {config_seconds:.2f} s (medians)",
            baseline=f"{eager_seconds:.2f} s for the imports the CLI used to make first",
            ratio=ratio,
            ratio_text=times(ratio),
            target=TARGETS["startup"],
            met=slowest <= TARGET_SECONDS,
            figures={
                "runs": runs,
                "help_seconds": round(help_seconds, 3),
                "config_seconds": round(config_seconds, 3),
                "eager_import_seconds": round(eager_seconds, 3),
                "bare_interpreter_seconds": round(bare_seconds, 3),
            },
            note=(
                f"Medians of {runs} runs from a fresh interpreter; Python itself starts in "
                f"{bare_seconds:.2f} s."
            ),
        )
    ]
