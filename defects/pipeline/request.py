"""A job as a user asks for it (:class:`JobRequest`), and what is checked before any work:
the hyperparameters against the schema, the name, the backend's options, the runs folder.

``run``, ``dry_run`` and the tuning functions take the same request; its data part is what
``job.json`` records and what a resumed job prepares again."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from defects import backends
from defects.backends.base import Backend, CloudOptions
from defects.dataset.manifest import PreparedDataset
from defects.dataset.steps import DATA_DIR, prepare, synthesize
from defects.errors import ConfigError
from defects.jobs.records import check_job_name, new_job_name
from defects.pipeline import lifecycle
from defects.settings import Settings, resolve
from defects.training import contract
from defects.training.contract import HyperparameterValue

# Called once the data is prepared, before anything is uploaded or sent: the CLI's cost
# estimate and confirmation (defects.pipeline.pricing) hook in here.
BeforeLaunch = Callable[[PreparedDataset, Mapping[str, HyperparameterValue], CloudOptions], None]


@dataclass(frozen=True)
class Checked:
    """A request checked before any work: the backend made, every hyperparameter known."""

    settings: Settings
    backend: Backend
    hyperparameters: dict[str, HyperparameterValue]
    name: str
    options: CloudOptions


@dataclass(frozen=True)
class JobRequest:
    """A job as asked for: the data (a folder, or ``per_class`` synthetic photos when
    ``data`` is None), where prepared data goes, the settings or the backend made from them,
    the hyperparameters (None: the defaults), the name (None: a new one), the cloud options
    and the hook called before anything is uploaded."""

    data: str | Path | None = None
    settings: Settings | None = None
    hyperparameters: Mapping[str, object] | None = None
    job_name: str | None = None
    per_class: int = 280
    classes: Sequence[str] | None = None
    data_dir: str | Path = DATA_DIR
    options: CloudOptions | None = None
    backend: Backend | None = None
    before_launch: BeforeLaunch | None = None

    def data_record(self) -> dict[str, Any]:
        """The data part, as ``job.json`` keeps it for a resumed job."""
        return {
            "data": str(self.data) if self.data is not None else None,
            "per_class": self.per_class,
            "classes": list(self.classes) if self.classes is not None else None,
            "data_dir": str(self.data_dir),
        }

    def check(
        self,
        *,
        kind: str = "defects",
        max_length: int | None = None,
        resume_hint: str = "defects train --resume",
    ) -> Checked:
        """Everything the user gave, checked before any work (a training job, or a tuning
        job with ``kind="tune"``); ``max_length`` is the backend's limit on the name."""
        backend = self.backend or backends.create(self.settings or resolve())
        settings = backend.settings
        parameters = hyperparameters_with_defaults(self.hyperparameters)
        name = check_job_name(self.job_name) if self.job_name else new_job_name(kind)
        if max_length is not None and len(name) > max_length:
            raise ConfigError(
                f"The job name {name!r} is longer than {max_length} characters.",
                hint=f"SageMaker limits these job names to {max_length} characters; choose a "
                "shorter --job-name.",
            )
        options = self.options or CloudOptions()
        backend.check_options(options)
        lifecycle.check_runs_dir(settings.runs_dir)
        if (settings.runs_dir / name).exists():
            raise lifecycle.name_taken(settings.runs_dir / name, resume_hint)
        return Checked(settings, backend, parameters, name, options)

    def prepare(self, seed: int) -> PreparedDataset:
        return prepare_data(self.data, self.per_class, self.classes, self.data_dir, seed)


def prepare_data(
    data: str | Path | None,
    per_class: int,
    classes: Sequence[str] | None,
    data_dir: str | Path,
    seed: int,
) -> PreparedDataset:
    """The prepared dataset of ``data``, or of synthetic photos drawn when it is None."""
    if data is None:
        data = synthesize(per_class=per_class, seed=seed, data_dir=Path(data_dir))
    return prepare(Path(data), classes=classes, seed=seed, data_dir=Path(data_dir))


def hyperparameters_with_defaults(
    given: Mapping[str, object] | None = None,
) -> dict[str, HyperparameterValue]:
    """Every hyperparameter, checked against the schema (None means "the default")."""
    try:
        return contract.complete_hyperparameters(given)
    except ValueError as error:
        raise ConfigError(f"Bad hyperparameter: {error}.", hint="See `defects config`.") from None


def resolve_image_size(
    hyperparameters: Mapping[str, HyperparameterValue], dataset: PreparedDataset | None
) -> dict[str, HyperparameterValue]:
    """``image_size=auto`` made concrete from the prepared train images' sizes (the entry
    point makes the same choice itself when it gets ``auto``)."""
    resolved = dict(hyperparameters)
    if str(resolved.get("image_size")).lower() != contract.AUTO or dataset is None:
        return resolved
    sizes = [
        (int(f["width"]), int(f["height"]))
        for f in dataset.files()
        if f.get("split") == "train" and f.get("width") and f.get("height")
    ]
    if sizes:
        budget = contract.pixel_budget(str(resolved.get("model", "")))
        resolved["image_size"] = contract.image_size_text(contract.auto_image_shape(sizes, budget))
    return resolved
