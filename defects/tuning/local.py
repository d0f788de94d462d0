"""The local search: trials as ordinary jobs on ``process`` or ``local``, chosen by Optuna.

SageMaker local mode has no tuning, so this driver plays the tuner's part on this machine:
it asks Optuna for each trial's values (``TPESampler`` for ``bayesian``, ``RandomSampler``,
``GridSampler``), runs up to ``max_parallel_jobs`` trials at once through
:func:`defects.pipeline.train` on the data staged once for the whole search, and reads each
trial's objective from its log with the metric definitions SageMaker would get. A definition
that matches nothing fails here, before any cloud trial is paid for.

Early stopping: while a trial runs its log is read as it grows; every value of the
objective is reported to Optuna's ``MedianPruner`` (SageMaker's "Auto" early stopping also
compares a trial with the median of earlier ones at the same epoch), and a trial it prunes
is stopped through its backend's own interruption path (the entry point is terminated, a
container taken down), within about one epoch. A trial past its last epoch is never
stopped: that would save no training, only lose its evaluation and model.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from defects import backends
from defects.backends.base import Backend, CloudOptions, TrainingJob
from defects.console import log
from defects.console.live import OUTPUT_LABEL
from defects.dataset.manifest import PreparedDataset
from defects.dataset.steps import DATA_DIR, prepare, stage, stage_weights
from defects.errors import (
    DISK_FULL_HEADLINE,
    DISK_FULL_HINT,
    DefectsError,
    DiskError,
    MetricNotFound,
    disk_full,
)
from defects.pipeline import launch as pipeline
from defects.pipeline.request import hyperparameters_with_defaults
from defects.storage import Layout, Storage
from defects.training import contract
from defects.training.contract import HyperparameterValue
from defects.training.metric_log import PREFIX, values
from defects.tuning import record
from defects.tuning.record import FINISHED, TIE_BREAK_METRIC, Trial, TuningRecord, mark_trial_job
from defects.tuning.spec import TuningSpec
from defects.tuning.tuners import Staged, Tuner

POLL_SECONDS = 0.5
# The entry point's last metric line, once it has trained (defects.training.train).
_FINAL_LINE = f"{PREFIX} final "


class _Stop(Exception):
    """Raised inside a trial's thread to stop it: an ordinary exception, so that the SDK
    and every backend clean up as they do for a failure."""


def _raise_in_thread(thread_id: int) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(_Stop))


@dataclass
class _Running:
    trial: Trial
    optuna_trial: Any
    log_path: Path
    # The epochs the trial trains (with ``--epochs auto``, their cap).
    epochs: int
    # Its log has the final metric line: it has trained.
    trained: bool = False
    thread_id: int | None = None
    finished: bool = False
    stop_reason: str | None = None
    offset: int = 0
    partial: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.perf_counter)

    def stop(self, reason: str) -> None:
        """Stop the trial's thread (once) unless it has finished."""
        with self.lock:
            if self.finished or self.stop_reason is not None or self.thread_id is None:
                return
            self.stop_reason = reason
            _raise_in_thread(self.thread_id)

    def training(self) -> bool:
        """Whether the trial has an epoch left to train, one that stopping it would save."""
        return not self.trained and len(self.trial.values) < self.epochs

    def new_lines(self) -> list[str]:
        """Lines the trial's log gained since the last call."""
        try:
            with self.log_path.open() as handle:
                handle.seek(self.offset)
                text = handle.read()
                self.offset = handle.tell()
        except FileNotFoundError:
            return []
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        return lines


def distributions(spec: TuningSpec) -> dict[str, Any]:
    """The search space as Optuna distributions."""
    import optuna

    space: dict[str, Any] = {}
    for item in spec.ranges:
        if item.kind == "categorical":
            space[item.name] = optuna.distributions.CategoricalDistribution(list(item.values))
        elif item.kind == "integer":
            space[item.name] = optuna.distributions.IntDistribution(
                int(item.low or 0), int(item.high or 0), log=item.log
            )
        else:
            space[item.name] = optuna.distributions.FloatDistribution(
                float(item.low or 0), float(item.high or 0), log=item.log
            )
    return space


def make_study(spec: TuningSpec, earlier: list[Trial]) -> Any:
    """An Optuna study for ``spec`` that already knows the ``earlier`` finished trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler: Any
    if spec.strategy == "grid":
        grid = {item.name: list(item.values) for item in spec.ranges}
        sampler = optuna.samplers.GridSampler(grid, seed=spec.seed)
    elif spec.strategy == "random":
        sampler = optuna.samplers.RandomSampler(seed=spec.seed)
    else:
        # Random trials first, as SageMaker's Bayesian search starts; constant_liar keeps
        # trials that run at the same time apart.
        startup = min(10, max(1, spec.max_jobs // 2))
        sampler = optuna.samplers.TPESampler(
            seed=spec.seed, n_startup_trials=startup, constant_liar=True
        )
    pruner: Any = (
        optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
        if spec.early_stopping
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        direction="maximize" if spec.maximize else "minimize", sampler=sampler, pruner=pruner
    )
    space = distributions(spec)
    states = {
        "completed": optuna.trial.TrialState.COMPLETE,
        "stopped": optuna.trial.TrialState.PRUNED,
        "failed": optuna.trial.TrialState.FAIL,
    }
    for trial in earlier:
        state = states[trial.state]
        study.add_trial(
            optuna.trial.create_trial(
                params={name: trial.params[name] for name in space},
                distributions=space,
                value=trial.objective if state == optuna.trial.TrialState.COMPLETE else None,
                intermediate_values=dict(enumerate(trial.values)),
                state=state,
            )
        )
    return study


class LocalSearch:
    """One tuning job's search on this machine: the storage is open and the data staged."""

    def __init__(
        self,
        backend: Backend,
        record: TuningRecord,
        tuning_dir: Path,
        store: Storage,
        channels: Mapping[str, str],
        dataset: PreparedDataset,
    ) -> None:
        self.record = record
        self.spec = record.spec
        self.tuning_dir = tuning_dir
        self.store = store
        self.channels = dict(channels)
        self.dataset = dataset
        # Trials are jobs like any other, one level down: runs/<tuning-job>/<trial>/.
        self.trial_backend = backends.create(replace(backend.settings, runs_dir=tuning_dir))
        self.definition = self.spec.objective_definition
        # The final validation loss breaks ties between equal objectives (record.ranked).
        self.loss_definition = self.spec.definition(TIE_BREAK_METRIC)

    def run(self) -> TuningRecord:
        record, spec = self.record, self.spec
        for trial in record.trials:
            if trial.state == "running":  # left behind by a crash
                trial.state = "interrupted"
        study = make_study(spec, record.finished())
        space = distributions(spec)
        budget = spec.max_jobs - len(record.finished())
        log.info(
            "Tuning job %s: %d trial(s) to run, %d at a time, %s search for %s (%s).",
            record.name,
            budget,
            spec.max_parallel_jobs,
            spec.strategy,
            spec.objective_metric,
            "maximised" if spec.maximize else "minimised",
        )
        running: dict[Future[BaseException | None], _Running] = {}
        with ThreadPoolExecutor(spec.max_parallel_jobs, thread_name_prefix="trial") as pool:
            try:
                while budget > 0 or running:
                    while budget > 0 and len(running) < spec.max_parallel_jobs:
                        item = self._start(study, space)
                        running[pool.submit(self._train, item)] = item
                        budget -= 1
                    done, _ = wait(running, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                    for item in running.values():
                        self._watch(item)
                    for future in done:
                        self._finish(study, running.pop(future), future)
            except BaseException as error:
                for item in running.values():
                    item.stop("the tuning job was interrupted")
                wait(running)
                for item in running.values():
                    item.trial.state = "interrupted"
                    item.trial.error = "the tuning job was interrupted"
                    item.trial.seconds = round(time.perf_counter() - item.started, 3)
                    mark_trial_job(self.tuning_dir / item.trial.name, record.name, item.trial)
                interrupted = isinstance(error, KeyboardInterrupt)
                record.status = "interrupted" if interrupted else "failed"
                try:
                    record.write(self.tuning_dir)
                except OSError as unwritten:
                    # (A full disk.) The error that ended the search is the one to report.
                    log.warning(
                        "Could not record how tuning job %s ended: %s", record.name, unwritten
                    )
                raise
        record.status = "completed"
        record.write(self.tuning_dir)
        return record

    def _start(self, study: Any, space: dict[str, Any]) -> _Running:
        optuna_trial = study.ask(space)
        number = self.record.next_number()
        name = f"{self.record.name}-{number:03d}"
        params: dict[str, HyperparameterValue] = dict(optuna_trial.params)
        trial = Trial(number=number, name=name, params=params)
        self.record.trials.append(trial)
        self.record.write(self.tuning_dir)
        log.info(
            "Trial %s: %s", name, " ".join(f"{k}={_shown(v)}" for k, v in sorted(params.items()))
        )
        return _Running(
            trial, optuna_trial, self.tuning_dir / name / "job.log", self._epochs(params)
        )

    def _epochs(self, params: Mapping[str, HyperparameterValue]) -> int:
        """The epochs a trial with ``params`` trains, or their cap, as the entry point counts."""
        hyperparameters = hyperparameters_with_defaults({**self.record.fixed, **params})
        if str(hyperparameters["epochs"]) != contract.AUTO:
            return int(hyperparameters["epochs"])
        training = sum(self.dataset.counts["train"].values())
        return contract.auto_epochs(
            str(hyperparameters["model"]), training, int(hyperparameters["batch_size"])
        )

    def _train(self, item: _Running) -> BaseException | None:
        """Run one trial in this (pool) thread; its outcome, never raised."""
        with item.lock:
            item.thread_id = threading.get_ident()
        if self.spec.max_parallel_jobs > 1:
            # Trials print at once: each line says whose it is.
            OUTPUT_LABEL.set(f"trial {item.trial.number}")
        item.trial.started_at = time.time()
        outcome: BaseException | None = None
        try:
            hyperparameters = hyperparameters_with_defaults(
                {**self.record.fixed, **item.trial.params}
            )
            pipeline.train(
                self.channels,
                self.store,
                self.trial_backend,
                hyperparameters,
                item.trial.name,
                dataset=self.dataset,
            )
            run_dir = pipeline.fetch(item.trial.name, self.store, self.tuning_dir)
            pipeline.plot(run_dir)
        except Exception as error:  # noqa: BLE001 - the driver decides what it means.
            outcome = error
        finally:
            item.trial.ended_at = time.time()
            with item.lock:
                item.finished = True
        return outcome

    def _watch(self, item: _Running) -> None:
        """Report the objective's new values; stop the trial when the pruner says so."""
        lines = item.new_lines()
        for value in values(self.definition, lines):
            item.optuna_trial.report(value, len(item.trial.values))
            item.trial.values.append(value)
        item.trained = item.trained or any(line.startswith(_FINAL_LINE) for line in lines)
        if (
            lines
            and self.spec.early_stopping
            and item.training()
            and item.optuna_trial.should_prune()
        ):
            step = len(item.trial.values)
            log.info(
                "Trial %s: stopped early after %d value(s) of the objective.", item.trial.name, step
            )
            item.stop(f"stopped early (median rule) after {step} value(s) of the objective")

    def _finish(self, study: Any, item: _Running, future: Future[BaseException | None]) -> None:
        import optuna

        trial = item.trial
        outcome = future.result()
        self._watch(item)
        trial.seconds = round(time.perf_counter() - item.started, 3)
        run_dir = self.tuning_dir / trial.name
        if item.stop_reason is not None and outcome is not None:
            trial.state, trial.error = "stopped", item.stop_reason
            trial.objective = trial.values[-1] if trial.values else None
            study.tell(item.optuna_trial, state=optuna.trial.TrialState.PRUNED)
        elif outcome is not None:
            trial.state, trial.error = "failed", str(outcome)
            study.tell(item.optuna_trial, state=optuna.trial.TrialState.FAIL)
            if disk_full(outcome):
                # Every next trial would fail the same way: stop, resumable once there is space.
                mark_trial_job(run_dir, self.record.name, trial)
                self.record.write(self.tuning_dir)
                raise DiskError(
                    f"Trial {trial.name} ran out of disk space, and so would the next trials: "
                    f"the search stops here. ({outcome})",
                    hint=f"{DISK_FULL_HINT} Then `defects tune --resume {self.record.name}` "
                    "continues the search, keeping its finished trials.",
                    headline=DISK_FULL_HEADLINE,
                )
            if not isinstance(outcome, DefectsError):
                log.error("Trial %s failed: %r", trial.name, outcome)
        else:
            full = (run_dir / "job.log").read_text().splitlines()
            found = values(self.definition, full)
            if not found:
                trial.state = "failed"
                trial.error = "its log has no line the objective's metric definition matches"
                study.tell(item.optuna_trial, state=optuna.trial.TrialState.FAIL)
                self.record.write(self.tuning_dir)
                raise MetricNotFound(
                    f"The metric definition {self.definition['Name']} "
                    f"({self.definition['Regex']!r}) matched no line of trial {trial.name}'s "
                    f"log ({run_dir / 'job.log'}). SageMaker would record nothing either.",
                    hint="Fix the metric definition or the entry point's metric lines "
                    "(defects/training/metric_log.py) before tuning in the cloud.",
                )
            trial.state, trial.objective, trial.values = "completed", found[-1], found
            losses = values(self.loss_definition, full) if self.loss_definition else []
            trial.validation_loss = losses[-1] if losses else None
            study.tell(item.optuna_trial, found[-1])
        mark_trial_job(run_dir, self.record.name, trial)
        self.record.write(self.tuning_dir)
        shown = "-" if trial.objective is None else f"{trial.objective:.4f}"
        log.info(
            "Trial %s %s: %s %s (%.0f s)%s",
            trial.name,
            trial.state,
            self.spec.objective_metric,
            shown,
            trial.seconds,
            f"; {trial.error}" if trial.error and trial.state == "failed" else "",
        )


def _shown(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class LocalTuner(Tuner):
    """The search on this machine (``process``) or in the training container (``local``):
    Optuna proposes, and each trial is an ordinary job under the tuning job's folder."""

    def describe(self, job: TrainingJob, layout: Layout, spec: TuningSpec) -> dict[str, Any]:
        return {
            "tuning_job_name": job.name,
            "backend": self.backend.name,
            "spec": spec.to_dict(),
            "trial_request": self.backend.describe(job, layout),
        }

    def search(
        self, tuning: TuningRecord, tuning_dir: Path, staged: Staged, options: CloudOptions
    ) -> TuningRecord:
        LocalSearch(
            self.backend, tuning, tuning_dir, staged.store, staged.channels, staged.dataset
        ).run()
        record.plot(tuning, tuning_dir / record.PLOT_FILE)
        return tuning

    def resume(self, tuning: TuningRecord, tuning_dir: Path) -> TuningRecord:
        dataset = prepare(Path(tuning.data["dataset_root"]))
        tuning.data.setdefault("validation_images", sum(dataset.counts["validation"].values()))
        tuning.status = "running"
        models = tuning.spec.values_of("model", tuning.fixed["model"])
        data_dir = Path(tuning.data.get("data_dir") or DATA_DIR)
        with self.backend.open_storage() as store:
            channels = {**stage(dataset, store), **stage_weights(models, store, data_dir)}
            return self.search(tuning, tuning_dir, Staged(store, channels, dataset), CloudOptions())


__all__ = ["FINISHED", "LocalSearch", "LocalTuner", "make_study"]
