"""defects: train a phone-surface defect classifier the same way everywhere.

The steps are plain functions (imported lazily, so ``import defects`` stays fast)::

    import defects
    summary = defects.run(per_class=24, hyperparameters={"epochs": 2})
    print(summary.line())
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {
    "run",
    "synthesize",
    "prepare",
    "stage",
    "train",
    "fetch",
    "plot",
    "open_storage",
    "evaluate",
    "predict",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        if name in {"evaluate", "predict"}:
            from defects import inference

            return getattr(inference, name)
        from defects import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'defects' has no attribute {name!r}")
