"""A tuning job's spec: the ranges searched, the objective, the limits and the strategy.

One spec drives both the local search (:mod:`.local`) and SageMaker's tuner (:mod:`.cloud`).
A range is written ``NAME=LOW:HIGH`` (continuous, or integer for an integer
hyperparameter), ``NAME=LOW:HIGH:log`` (searched on a log scale) or ``NAME=A,B,C``
(categorical), on the command line (``--range``) or in a TOML file (``--spec``)::

    objective = "macro-f1"          # or "accuracy", "loss"
    strategy = "random"             # or "bayesian", "grid"
    max_jobs = 6
    max_parallel_jobs = 2
    seed = 0
    early_stopping = true

    [ranges]
    learning_rate = "0.0001:0.01:log"
    batch_size = [8, 16, 32]

Every end and value is checked by the hyperparameter's own schema
(:data:`defects.training.contract.HYPERPARAMETERS`) before anything starts.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from defects.errors import ConfigError
from defects.training import contract
from defects.training.contract import HyperparameterValue
from defects.training.metric_log import METRIC_DEFINITIONS

# --objective -> (metric name in the log and in SageMaker, SageMaker's objective type).
OBJECTIVES: dict[str, tuple[str, str]] = {
    "macro-f1": ("validation:macro_f1", "Maximize"),
    "accuracy": ("validation:accuracy", "Maximize"),
    "loss": ("validation:loss", "Minimize"),
}
# --strategy -> SageMaker's name for it.
STRATEGIES: dict[str, str] = {"bayesian": "Bayesian", "random": "Random", "grid": "Grid"}
DEFAULT_MAX_JOBS = 10
_SPEC_TYPES: dict[str, type] = {
    "objective": str,
    "strategy": str,
    "max_jobs": int,
    "max_parallel_jobs": int,
    "seed": int,
    "early_stopping": bool,
}
_SPEC_KEYS = {*_SPEC_TYPES, "ranges"}


@dataclass(frozen=True)
class Range:
    """One searched hyperparameter: ``continuous``/``integer`` between ``low`` and
    ``high`` (``log``: on a log scale), or ``categorical`` over ``values``."""

    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    values: tuple[HyperparameterValue, ...] = ()

    def text(self) -> str:
        """The range as it is written: ``learning_rate=0.0001:0.01:log``."""
        if self.kind == "categorical":
            return f"{self.name}=" + ",".join(self.serialised_values())
        ends = f"{self.low:g}:{self.high:g}"
        return f"{self.name}={ends}{':log' if self.log else ''}"

    def serialised_values(self) -> list[str]:
        """The categorical values as every backend passes them."""
        spec = contract.HYPERPARAMETER_SCHEMA[self.name]
        return [spec.serialise(value) for value in self.values]


def _refuse(text: str, reason: str) -> ConfigError:
    return ConfigError(
        f"--range {text}: {reason}.",
        hint="Write NAME=LOW:HIGH, NAME=LOW:HIGH:log or NAME=A,B,C with a hyperparameter "
        "of `defects config`, within its bounds.",
    )


def parse_range(text: str) -> Range:
    """``NAME=LOW:HIGH[:log]`` or ``NAME=A,B,C``, checked against the schema."""
    name, separator, body = text.partition("=")
    name = name.strip().replace("-", "_")
    if not separator or not body.strip():
        raise _refuse(text, "expected NAME=LOW:HIGH or NAME=A,B,C")
    spec = contract.HYPERPARAMETER_SCHEMA.get(name)
    if spec is None:
        raise _refuse(
            text,
            f"unknown hyperparameter {name!r}; known: {', '.join(contract.HYPERPARAMETER_SCHEMA)}",
        )
    try:
        if "," in body or ":" not in body:
            return _categorical(spec, body)
        return _numeric(spec, body)
    except ValueError as error:
        raise _refuse(text, str(error)) from None


def _categorical(spec: contract.Hyperparameter, body: str) -> Range:
    values = tuple(spec.parse(part) for part in body.split(",") if part.strip())
    if len(values) < 2:
        raise ValueError("a search needs at least two values")
    if len(set(values)) != len(values):
        raise ValueError("a value is listed twice")
    return Range(spec.name, "categorical", values=values)


def _numeric(spec: contract.Hyperparameter, body: str) -> Range:
    parts = [part.strip() for part in body.split(":")]
    log = len(parts) == 3 and parts[2].lower() == "log"
    if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
        raise ValueError("expected LOW:HIGH or LOW:HIGH:log")
    if spec.kind not in {"int", "float"}:
        raise ValueError(f"{spec.name} is not a number; list its values as A,B,C")
    low, high = (spec.parse(part) for part in parts[:2])
    assert isinstance(low, int | float) and isinstance(high, int | float)
    if not low < high:
        raise ValueError(f"the low end {low:g} must be below the high end {high:g}")
    if log and low <= 0:
        raise ValueError("a log scale needs a low end above 0")
    kind = "integer" if spec.kind == "int" else "continuous"
    return Range(spec.name, kind, low=low, high=high, log=log)


@dataclass(frozen=True)
class TuningSpec:
    """What a tuning job searches and how; the same for every backend."""

    ranges: tuple[Range, ...]
    objective: str = "macro-f1"
    strategy: str = "bayesian"
    max_jobs: int = DEFAULT_MAX_JOBS
    max_parallel_jobs: int = 1
    seed: int = 0
    early_stopping: bool = False
    metric_definitions: tuple[dict[str, str], ...] = field(default=METRIC_DEFINITIONS)

    @property
    def objective_metric(self) -> str:
        return OBJECTIVES[self.objective][0]

    def values_of(self, name: str, fixed: HyperparameterValue) -> list[str]:
        """Every value hyperparameter ``name`` takes in this search: its categorical range's
        values when it is searched so, else ``fixed``."""
        for item in self.ranges:
            if item.name == name and item.kind == "categorical":
                return [str(value) for value in item.values]
        return [str(fixed)]

    @property
    def objective_type(self) -> str:
        """``Maximize`` or ``Minimize``, as SageMaker spells it."""
        return OBJECTIVES[self.objective][1]

    @property
    def maximize(self) -> bool:
        return self.objective_type == "Maximize"

    @property
    def objective_definition(self) -> dict[str, str]:
        definition = self.definition(self.objective_metric)
        if definition is None:
            raise ConfigError(f"No metric definition for the objective {self.objective_metric}.")
        return definition

    def definition(self, metric: str) -> dict[str, str] | None:
        """The metric definition named ``metric``, if the spec has one."""
        return next((d for d in self.metric_definitions if d["Name"] == metric), None)

    @property
    def searched(self) -> tuple[str, ...]:
        return tuple(item.name for item in self.ranges)

    def grid_size(self) -> int:
        return math.prod(len(item.values) for item in self.ranges)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["ranges"] = [item.text() for item in self.ranges]
        record["metric_definitions"] = [dict(d) for d in self.metric_definitions]
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> TuningSpec:
        """A spec as :meth:`to_dict` wrote it (``tune.json``)."""
        return cls(
            ranges=tuple(parse_range(text) for text in record["ranges"]),
            objective=record["objective"],
            strategy=record["strategy"],
            max_jobs=int(record["max_jobs"]),
            max_parallel_jobs=int(record["max_parallel_jobs"]),
            seed=int(record["seed"]),
            early_stopping=bool(record["early_stopping"]),
            metric_definitions=tuple(dict(d) for d in record["metric_definitions"]),
        )


def load_spec_file(path: Path) -> dict[str, Any]:
    """The settings of a TOML spec file, with its ranges as ``NAME=...`` texts."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"The spec file {path} does not exist.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"The spec file {path} is not valid TOML: {error}.") from None
    except OSError as error:
        raise ConfigError(f"The spec file {path} cannot be read: {error.strerror}.") from None
    unknown = set(data) - _SPEC_KEYS
    if unknown:
        raise ConfigError(
            f"The spec file {path} has unknown keys: {', '.join(sorted(unknown))}.",
            hint=f"Known keys: {', '.join(sorted(_SPEC_KEYS))}.",
        )
    ranges = []
    for name, value in dict(data.pop("ranges", {})).items():
        body = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
        ranges.append(f"{name}={body}")
    return {**data, "ranges": ranges}


def make_spec(
    ranges: list[str],
    objective: str | None = None,
    strategy: str | None = None,
    max_jobs: int | None = None,
    max_parallel_jobs: int | None = None,
    seed: int | None = None,
    early_stopping: bool | None = None,
    spec_file: Path | None = None,
    default_seed: int = 0,
) -> TuningSpec:
    """The spec from a spec file and the command line (which wins), checked whole; the
    search is seeded by ``seed``, else the file's, else ``default_seed``."""
    given: dict[str, Any] = load_spec_file(spec_file) if spec_file else {"ranges": []}
    given.setdefault("seed", default_seed)
    by_name: dict[str, Range] = {}
    # The command line's ranges come last: they replace the file's of the same name.
    for text in [*given.pop("ranges"), *ranges]:
        parsed = parse_range(text)
        by_name[parsed.name] = parsed
    if not by_name:
        raise ConfigError(
            "A tuning job needs at least one searched hyperparameter.",
            hint="Add --range NAME=LOW:HIGH (or NAME=A,B,C), or give --spec FILE with [ranges].",
        )
    flags = {
        "objective": objective,
        "strategy": strategy,
        "max_jobs": max_jobs,
        "max_parallel_jobs": max_parallel_jobs,
        "seed": seed,
        "early_stopping": early_stopping,
    }
    given.update({key: value for key, value in flags.items() if value is not None})
    for key, value in given.items():
        expected = _SPEC_TYPES[key]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(
                f"The tuning spec's {key} is {value!r}: expected {expected.__name__}."
            )
    spec = replace(TuningSpec(ranges=tuple(by_name.values())), **given)
    return check(spec, max_jobs_given="max_jobs" in given)


def check(spec: TuningSpec, max_jobs_given: bool = True) -> TuningSpec:
    """``spec`` when it is consistent, else a :class:`ConfigError` naming the fix."""
    if spec.objective not in OBJECTIVES:
        raise ConfigError(
            f"Unknown objective {spec.objective!r}.", hint=f"Use one of: {', '.join(OBJECTIVES)}."
        )
    if spec.strategy not in STRATEGIES:
        raise ConfigError(
            f"Unknown strategy {spec.strategy!r}.", hint=f"Use one of: {', '.join(STRATEGIES)}."
        )
    if spec.strategy == "grid":
        numeric = [item.name for item in spec.ranges if item.kind != "categorical"]
        if numeric:
            raise ConfigError(
                f"A grid search takes listed values only; {', '.join(numeric)} "
                "is a LOW:HIGH range.",
                hint="List the values to try (NAME=A,B,C), or use --strategy random or bayesian.",
            )
        if max_jobs_given and spec.max_jobs != spec.grid_size():
            raise ConfigError(
                f"A grid search runs every combination ({spec.grid_size()}); "
                f"--max-jobs {spec.max_jobs} does not fit.",
                hint="Drop --max-jobs for a grid search.",
            )
        spec = replace(spec, max_jobs=spec.grid_size())
    if spec.max_jobs < 1 or spec.max_parallel_jobs < 1:
        raise ConfigError("--max-jobs and --max-parallel-jobs must be at least 1.")
    if spec.seed < 0:
        raise ConfigError(f"The search seed must be 0 or more, not {spec.seed}.")
    # An objective without a metric definition is refused here, before anything starts.
    spec.objective_definition  # noqa: B018
    return spec
