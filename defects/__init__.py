"""defects: train a surface-defect classifier the same way everywhere.

The steps are plain functions (imported lazily, so ``import defects`` stays fast)::

    import defects
    result = defects.run(per_class=24, hyperparameters={"epochs": 2})
    print(result.line())
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# Public name -> the module that holds it.
_API = {
    "run": "defects.pipeline",
    "dry_run": "defects.pipeline",
    "train": "defects.pipeline",
    "fetch": "defects.pipeline",
    "plot": "defects.pipeline",
    "collect": "defects.pipeline",
    "JobResult": "defects.jobs",
    "DetachedJob": "defects.jobs",
    "synthesize": "defects.dataset.steps",
    "prepare": "defects.dataset.steps",
    "stage": "defects.dataset.steps",
    "evaluate": "defects.inference",
    "predict": "defects.inference",
    "run_entry_point": "defects.entrypoint",
    "create_backend": "defects.backends",
    "resolve_settings": "defects.settings",
}
_RENAMED = {"create_backend": "create", "resolve_settings": "resolve"}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        module = importlib.import_module(_API[name])
        return getattr(module, _RENAMED.get(name, name))
    raise AttributeError(f"module 'defects' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
