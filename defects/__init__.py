"""defects: train a surface-defect classifier the same way everywhere.

The steps are plain functions (imported lazily, so ``import defects`` stays fast). They take
``str`` or ``Path``, return typed results, and log to the ``defects`` logger::

    import defects
    result = defects.run(per_class=24, hyperparameters={"epochs": 2})
    print(result.line(), result.history["val_accuracy"])
    print(defects.evaluate(result.run_dir).accuracy)
    for prediction in defects.predict(result.run_dir, "photos/"):
        print(prediction.path, prediction.label)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that holds it.
_API = {
    "run": "defects.pipeline.launch",
    "dry_run": "defects.pipeline.launch",
    "train": "defects.pipeline.launch",
    "fetch": "defects.pipeline.launch",
    "plot": "defects.pipeline.launch",
    "collect": "defects.pipeline.launch",
    "JobResult": "defects.jobs.records",
    "DetachedJob": "defects.jobs.records",
    "synthesize": "defects.dataset.steps",
    "prepare": "defects.dataset.steps",
    "stage": "defects.dataset.steps",
    "evaluate": "defects.inference.evaluation",
    "Evaluation": "defects.inference.evaluation",
    "load_model": "defects.inference.loading",
    "LoadedModel": "defects.inference.loading",
    "predict": "defects.inference.prediction",
    "Prediction": "defects.inference.prediction",
    "Settings": "defects.settings",
    "DefectsError": "defects.errors",
    "run_entry_point": "defects.backends.launcher",
    "create_backend": "defects.backends",
    "resolve_settings": "defects.settings",
}
_RENAMED = {"create_backend": "create", "resolve_settings": "resolve"}

__all__ = [
    "DefectsError",
    "DetachedJob",
    "Evaluation",
    "JobResult",
    "LoadedModel",
    "Prediction",
    "Settings",
    "collect",
    "create_backend",
    "dry_run",
    "evaluate",
    "fetch",
    "load_model",
    "plot",
    "predict",
    "prepare",
    "resolve_settings",
    "run",
    "run_entry_point",
    "stage",
    "synthesize",
    "train",
]

if TYPE_CHECKING:  # For editors and type checkers; at run time the names load on first use.
    from defects.backends import create as create_backend
    from defects.backends.launcher import run_entry_point
    from defects.dataset.steps import prepare, stage, synthesize
    from defects.errors import DefectsError
    from defects.inference.evaluation import Evaluation, evaluate
    from defects.inference.loading import LoadedModel, load_model
    from defects.inference.prediction import Prediction, predict
    from defects.jobs.records import DetachedJob, JobResult
    from defects.pipeline.launch import collect, dry_run, fetch, plot, run, train
    from defects.settings import Settings
    from defects.settings import resolve as resolve_settings


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        module = importlib.import_module(_API[name])
        return getattr(module, _RENAMED.get(name, name))
    raise AttributeError(f"module 'defects' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
