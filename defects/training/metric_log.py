"""The entry point's metric lines, and the regular expressions that read them.

The entry point prints one line after every epoch and one at the end::

    metric: epoch=3 val_accuracy=0.900000 val_loss=0.310000 val_macro_f1=0.870000
    metric: final val_accuracy=0.910000 val_loss=0.300000 val_macro_f1=0.880000

:data:`METRIC_DEFINITIONS` are the metric definitions (name and regular expression) a
SageMaker tuning job applies to the job's log; the local tuning driver reads its objective
through the very same ones, so a definition that does not match fails on this machine
first. Like SageMaker, a reader takes every match as one more value in time and the last
one as the final value. ``val_macro_f1`` appears after each epoch only when the
``epoch_metrics`` hyperparameter asks for it (every epoch's validation computes it anyway,
for early stopping; the line keeps its old form unless asked); the final line always has it.

Standard library only: the entry point imports this inside the container.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

PREFIX = "metric:"
# A number as Python prints it with a fixed precision, or in exponent notation.
_NUMBER = r"(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"

# The metric's name (SageMaker's and the tuner's) -> its key in the line.
METRIC_KEYS: dict[str, str] = {
    "validation:macro_f1": "val_macro_f1",
    "validation:accuracy": "val_accuracy",
    "validation:loss": "val_loss",
}

METRIC_DEFINITIONS: tuple[dict[str, str], ...] = tuple(
    {"Name": name, "Regex": f"{PREFIX} .* {key}={_NUMBER}"} for name, key in METRIC_KEYS.items()
)


def line(label: str, values: Mapping[str, float | None]) -> str:
    """One metric line: ``metric: <label> key=value ...``; values that are missing or not
    finite are left out, so that no regular expression reads them."""
    parts = [
        f"{key}={float(value):.6f}"
        for key, value in sorted(values.items())
        if value is not None and math.isfinite(float(value))
    ]
    return " ".join([PREFIX, label, *parts])


def values(definition: Mapping[str, str], lines: list[str]) -> list[float]:
    """Every value ``definition`` reads from ``lines``, in order (the first group of its
    regular expression, searched in each line as SageMaker does)."""
    pattern = re.compile(definition["Regex"])
    found: list[float] = []
    for text in lines:
        match = pattern.search(text)
        if match:
            try:
                found.append(float(match.group(1)))
            except (IndexError, ValueError):
                continue
    return found
