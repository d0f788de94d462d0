"""The backends: where the training entry point runs.

Each is listed once, as ``name -> "module.Class"``, and imported only when chosen, so that
the ``process`` backend never pays for the SageMaker SDK. Nothing outside this package asks
which backend is active.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from defects.backends.base import Backend
    from defects.settings import Settings

BACKENDS: dict[str, str] = {
    "process": "defects.backends.process.ProcessBackend",
    "local": "defects.backends.local.LocalBackend",
    "sagemaker": "defects.backends.sagemaker.SageMakerBackend",
}


def backend_class(name: str) -> type[Backend]:
    module_name, class_name = BACKENDS[name].rsplit(".", 1)
    module = importlib.import_module(module_name)
    backend: type[Backend] = getattr(module, class_name)
    return backend


def get_backend(settings: Settings) -> Backend:
    """The backend the settings choose, constructed once at the CLI boundary."""
    return backend_class(settings.backend)(settings)
