"""The backends: where the training entry point runs.

Each is listed once, as ``name -> "module.Class"``, and imported only when chosen, so that
the ``process`` backend never pays for the SageMaker SDK. Nothing outside this package asks
which backend is active.

- :mod:`.base`: the interface (``check``, ``train``) and the job a backend is given;
- :mod:`.process` (with :mod:`.launcher`, the entry point started on this machine),
  :mod:`.local` (with :mod:`.compose`), and :mod:`.cloud` (SageMaker);
- :mod:`.modeltrainer`: the SDK's ``ModelTrainer``, shared by local and cloud;
- :mod:`.artifacts`: a finished job's archives, packed and uploaded alike by every backend.

Imports: storage, dataset, jobs, console, settings, signals, errors and the training
contract; never the pipeline, tuning, inference or the CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from defects.errors import ConfigError

if TYPE_CHECKING:
    from defects.backends.base import Backend, Confirm
    from defects.settings import Settings

BACKENDS: dict[str, str] = {
    "process": "defects.backends.process.ProcessBackend",
    "local": "defects.backends.local.LocalBackend",
    "sagemaker": "defects.backends.cloud.SageMakerBackend",
}


def check_name(name: str) -> str:
    """``name`` if it is a backend's, else a :class:`ConfigError` naming the allowed ones."""
    if name not in BACKENDS:
        raise ConfigError(
            f"Unknown backend {name!r}.",
            hint=f"Set DEFECTS_BACKEND (or --backend) to one of: {', '.join(BACKENDS)}.",
        )
    return name


def backend_class(name: str) -> type[Backend]:
    module_name, class_name = BACKENDS[check_name(name)].rsplit(".", 1)
    module = importlib.import_module(module_name)
    backend: type[Backend] = getattr(module, class_name)
    return backend


def create(settings: Settings, confirm: Confirm | None = None) -> Backend:
    """The backend the settings choose, made once at the boundary (CLI or API call).

    ``confirm`` asks the user a yes/no question (the CLI's prompt on a terminal); without it
    a backend takes the safe answer."""
    return backend_class(settings.backend)(settings, confirm=confirm)
