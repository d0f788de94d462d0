"""Tuning jobs: the same hyperparameter search on this machine, in the training container
and on SageMaker, from one spec.

- :mod:`.spec`: the ranges, objective, limits and strategy, checked against the schema;
- :mod:`.local`: the search on ``process`` and ``local`` (Optuna), trials as ordinary jobs;
- :mod:`.cloud`: SageMaker's ``HyperparameterTuner`` on the training job's ``ModelTrainer``;
- :mod:`.record`: ``runs/<tuning-job>/tune.json``, the results table and ``tune.png``;
- :mod:`.driver`: ``tune``, ``dry_run`` and ``resume`` as a user runs them.
"""

from defects.tuning.driver import dry_run, resume, tune
from defects.tuning.spec import TuningSpec, make_spec

__all__ = ["TuningSpec", "dry_run", "make_spec", "resume", "tune"]
