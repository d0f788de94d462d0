"""Where a search runs, one tuner per backend, listed once as ``name -> "module.Class"`` and
imported only when chosen, as the backends are (:mod:`defects.backends`).

A :class:`Tuner` is handed the backend, the staged data and the tuning record; the driver
never asks which backend it has."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from defects.backends.base import Backend, CloudOptions, TrainingJob
    from defects.dataset.manifest import PreparedDataset
    from defects.storage import Layout, Storage
    from defects.tuning.record import TuningRecord
    from defects.tuning.spec import TuningSpec

TUNERS: dict[str, str] = {
    "process": "defects.tuning.local.LocalTuner",
    "local": "defects.tuning.local.LocalTuner",
    "sagemaker": "defects.tuning.cloud.CloudTuner",
}


@dataclass(frozen=True)
class Staged:
    """A search's data: prepared, and staged in the open storage as the channels' URIs."""

    store: Storage
    channels: Mapping[str, str]
    dataset: PreparedDataset


class Tuner(ABC):
    """A search on one backend: its dry run, its run and its resumption."""

    # Whether the trials' data stays in this tool's own bucket (recorded for a resume).
    records_bucket: bool = True

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @abstractmethod
    def describe(self, job: TrainingJob, layout: Layout, spec: TuningSpec) -> dict[str, Any]:
        """What the search would start, for ``--dry-run``; nothing is sent."""

    @abstractmethod
    def search(
        self, tuning: TuningRecord, tuning_dir: Path, staged: Staged, options: CloudOptions
    ) -> TuningRecord:
        """Run the search on the ``staged`` data (``tune.json`` is written already)."""

    @abstractmethod
    def resume(self, tuning: TuningRecord, tuning_dir: Path) -> TuningRecord:
        """Continue an interrupted search, or follow a detached one to its end."""


def tuner_for(backend: Backend) -> Tuner:
    """The tuner of ``backend`` (the registry has one for every backend)."""
    module_name, class_name = TUNERS[backend.name].rsplit(".", 1)
    tuner: type[Tuner] = getattr(importlib.import_module(module_name), class_name)
    return tuner(backend)
