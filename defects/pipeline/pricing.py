"""A price before any cloud job: what a training or tuning job will cost, shown by every
``--dry-run`` and every launch on a backend that bills, and confirmed above a threshold.

The expected time comes from this model's measured throughput (``metrics.json``:
``train_images_per_second``) on the newest finished job of the same settings (model, image
size, batch size, precision) under ``runs/``: a cloud run of the same instance type is
taken as it is; a run on this machine (or another instance type) is scaled by the
instance types' ``relative_speed`` in the price table. Add ``overhead_seconds`` for what
is billed beside the fit. The price per hour is the table's (``defects/prices.toml``, dated,
with its source) unless ``--price-per-hour`` is given; ``--spot`` assumes the table's
typical saving; a tuning job multiplies by its number of trials. Without a measured run the
estimate says so and the ceiling (``--max-runtime`` per job) stands in for it.

Above ``DEFECTS_CONFIRM_ABOVE_USD`` (default 10) a launch asks on a terminal and is refused
without a yes, unless ``--yes`` is given.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from defects.backends.base import Backend, CloudOptions
from defects.console import err
from defects.dataset.manifest import PreparedDataset
from defects.errors import NotConfirmed
from defects.jobs.listing import job_folders
from defects.jobs.records import read_record
from defects.training import contract

# Settings that change the throughput of a job: a measurement counts only for the same ones.
SAME_SETTINGS = ("model", "image_size", "batch_size", "precision")


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    source: str
    spot_saving: float
    overhead_seconds: float
    instances: Mapping[str, Mapping[str, float]]
    # False while the figures have not been checked against the source.
    verified: bool = True

    def price(self, instance_type: str) -> float | None:
        entry = self.instances.get(instance_type)
        return float(entry["price_per_hour"]) if entry else None

    def speed(self, instance_type: str | None) -> float | None:
        entry = self.instances.get(instance_type or "")
        return float(entry["relative_speed"]) if entry else None


def price_table() -> PriceTable:
    data = tomllib.loads(resources.files("defects").joinpath("prices.toml").read_text())
    return PriceTable(
        as_of=data["as_of"],
        source=data["source"],
        spot_saving=float(data["spot_saving"]),
        overhead_seconds=float(data["overhead_seconds"]),
        verified=bool(data.get("verified", True)),
        instances=data["instances"],
    )


@dataclass(frozen=True)
class Measurement:
    job_name: str
    backend: str
    # The cloud instance type it ran on; None for this machine.
    instance_type: str | None
    images_per_second: float


def last_measurement(runs_dir: Path, hyperparameters: Mapping[str, object]) -> Measurement | None:
    """The newest finished job under ``runs_dir`` (trials of tuning jobs included) with the
    same settings as ``hyperparameters`` and a measured throughput."""
    wanted = {key: contract.serialise(hyperparameters)[key] for key in SAME_SETTINGS}
    found = [
        folder / contract.METRICS_FILE
        for folder in job_folders(runs_dir)
        if (folder / contract.METRICS_FILE).is_file()
    ]
    for path in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True):
        record = read_record(path.parent)
        given = record.get("hyperparameters") or {}
        try:
            settings = {key: contract.serialise(given)[key] for key in SAME_SETTINGS}
            speed = float(json.loads(path.read_text()).get("train_images_per_second") or 0)
        except (KeyError, ValueError, TypeError):
            continue
        if settings == wanted and speed > 0:
            details = record.get("details") or {}
            return Measurement(
                path.parent.name, str(record.get("backend")), details.get("instance_type"), speed
            )
    return None


@dataclass(frozen=True)
class Estimate:
    """What ``jobs`` jobs on ``instance_type`` (None: this machine) are expected to cost."""

    instance_type: str | None
    jobs: int
    spot: bool
    seconds_per_job: float | None
    basis: str
    price_per_hour: float | None
    price_basis: str
    spot_saving: float
    max_seconds_per_job: int

    def expected_usd(self) -> float | None:
        if self.seconds_per_job is None or self.price_per_hour is None:
            return None
        on_demand = self.jobs * self.seconds_per_job / 3600 * self.price_per_hour
        return on_demand * (1 - self.spot_saving) if self.spot else on_demand

    def on_demand_usd(self) -> float | None:
        if self.seconds_per_job is None or self.price_per_hour is None:
            return None
        return self.jobs * self.seconds_per_job / 3600 * self.price_per_hour

    def ceiling_usd(self) -> float | None:
        """Every job running to its ``--max-runtime``, at the on-demand price."""
        if self.price_per_hour is None:
            return None
        return self.jobs * self.max_seconds_per_job / 3600 * self.price_per_hour

    def amount(self) -> float | None:
        """What is compared with the confirmation threshold: the expected cost, else the
        ceiling; None when there is no price."""
        expected = self.expected_usd()
        return expected if expected is not None else self.ceiling_usd()

    def lines(self) -> list[str]:
        jobs = f"{self.jobs} job{'s' if self.jobs != 1 else ''}"
        time = (
            f"about {_duration(self.seconds_per_job)} per job ({self.basis})"
            if self.seconds_per_job is not None
            else f"unknown ({self.basis})"
        )
        if self.instance_type is None:
            return [f"estimate: {jobs} on this machine, no charge; training time {time}"]
        lines = [
            f"estimate: {jobs} on {self.instance_type} at "
            + (
                f"${self.price_per_hour:.3f}/h ({self.price_basis})"
                if self.price_per_hour is not None
                else f"an unknown price ({self.price_basis})"
            ),
            f"  training time: {time}",
        ]
        on_demand = self.on_demand_usd()
        if on_demand is not None:
            cost = f"  expected cost: about ${on_demand:.2f} on demand"
            if self.spot:
                cost += (
                    f"; with --spot about ${on_demand * (1 - self.spot_saving):.2f} "
                    f"(assuming the typical {self.spot_saving:.0%} saving; spot prices vary)"
                )
            lines.append(cost)
        ceiling = self.ceiling_usd()
        if ceiling is not None:
            lines.append(
                f"  at most ${ceiling:.2f} ({jobs} x the {_duration(self.max_seconds_per_job)} "
                "--max-runtime, on demand)"
            )
        return lines


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{rest:02d}s"


def estimate(
    backend: Backend,
    dataset: PreparedDataset,
    settings: Sequence[Mapping[str, object]],
    options: CloudOptions,
    jobs: int = 1,
    price_per_hour: float | None = None,
) -> Estimate:
    """The estimate for ``jobs`` jobs whose hyperparameters are the most expensive of
    ``settings`` (one for a training job; a tuning job's costliest corners)."""
    table = price_table()
    instance = backend.billed_instance_type
    images = sum(dataset.counts.get(contract.TRAIN_CHANNEL, {}).values())
    longest: float | None = 0.0
    bases: list[str] = []
    for hyperparameters in settings:
        seconds, basis = _seconds(backend, table, images, hyperparameters)
        bases.append(basis)
        longest = None if seconds is None or longest is None else max(longest, seconds)
    price = (
        price_per_hour
        if price_per_hour is not None
        else (table.price(instance) if instance else None)
    )
    if price_per_hour is not None:
        price_basis = "--price-per-hour"
    elif price is not None:
        checked = "" if table.verified else "unverified "
        price_basis = f"{checked}price table of {table.as_of}, {table.source}"
    else:
        price_basis = f"not in the price table of {table.as_of}; give --price-per-hour"
    return Estimate(
        instance_type=instance,
        jobs=jobs,
        spot=options.spot,
        seconds_per_job=longest,
        basis="; ".join(dict.fromkeys(bases)),
        price_per_hour=price,
        price_basis=price_basis,
        spot_saving=table.spot_saving,
        max_seconds_per_job=options.max_runtime,
    )


def _seconds(
    backend: Backend, table: PriceTable, images: int, hyperparameters: Mapping[str, object]
) -> tuple[float | None, str]:
    measured = last_measurement(backend.settings.runs_dir, hyperparameters)
    if measured is None:
        shown = ", ".join(f"{k} {contract.serialise(hyperparameters)[k]}" for k in SAME_SETTINGS)
        return (
            None,
            f"no finished job of these settings ({shown}) to measure: run one locally first",
        )
    target = backend.billed_instance_type
    factor, scaled = 1.0, ""
    if target is not None and measured.instance_type != target:
        target_speed = table.speed(target)
        measured_speed = table.speed(measured.instance_type) if measured.instance_type else 1.0
        if target_speed is None or measured_speed is None:
            return None, f"no relative speed for {target} in the price table"
        factor = target_speed / measured_speed
        scaled = f", x{factor:g} for {target}"
    epochs, epochs_text = _epochs(hyperparameters, images)
    fit = images * epochs / (measured.images_per_second * factor)
    overhead = table.overhead_seconds if target is not None else 0.0
    basis = (
        f"job {measured.job_name} on {measured.instance_type or measured.backend}: "
        f"{measured.images_per_second:g} img/s{scaled}; {images} images x {epochs_text}"
        + (f" + {overhead:g} s start-up" if overhead else "")
    )
    return fit + overhead, basis


def _epochs(hyperparameters: Mapping[str, object], images: int) -> tuple[int, str]:
    """The epochs to price and how to say it: ``--epochs auto`` is priced at its cap (it
    stops earlier when validation stops improving)."""
    given = contract.serialise(hyperparameters)
    if given["epochs"] == contract.AUTO:
        cap = contract.auto_epochs(given["model"], images, int(given["batch_size"]))
        return cap, f"at most {cap} epochs (auto)"
    return int(given["epochs"]), f"{given['epochs']} epochs"


def approve(
    estimate: Estimate,
    threshold_usd: float,
    confirm: Callable[[str], bool] | None,
    yes: bool,
) -> None:
    """Let a paid launch go ahead, or raise :class:`NotConfirmed`: above the threshold (or
    with no price at all) it needs ``--yes`` or a yes on the terminal."""
    if estimate.instance_type is None or yes:
        return
    amount = estimate.amount()
    if amount is not None and amount <= threshold_usd:
        return
    what = f"about ${amount:.2f}" if amount is not None else "an unknown amount"
    if confirm is not None and confirm(f"This launch may cost {what}. Launch it?"):
        return
    raise NotConfirmed(
        f"This launch may cost {what}, above the confirmation threshold of "
        f"${threshold_usd:.2f}, and was not confirmed.",
        hint="Run it on a terminal and answer yes, add --yes, or raise DEFECTS_CONFIRM_ABOVE_USD.",
    )


def show(estimate: Estimate) -> None:
    """The estimate on stderr (stdout keeps the result: a request, a table)."""
    for line in estimate.lines():
        err.print(line, highlight=False, markup=False)


def to_dict(estimate: Estimate) -> dict[str, Any]:
    return {
        "instance_type": estimate.instance_type,
        "jobs": estimate.jobs,
        "seconds_per_job": estimate.seconds_per_job,
        "price_per_hour": estimate.price_per_hour,
        "expected_usd": estimate.expected_usd(),
        "ceiling_usd": estimate.ceiling_usd(),
        "spot": estimate.spot,
    }
