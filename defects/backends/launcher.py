"""The training entry point on this machine, exactly as every backend ships and starts it.

:func:`source_dir` lays out the code a backend ships (SageMaker uploads the same folder):
``train.py`` beside a ``defects`` package that holds only the training modules.
:func:`run_entry_point` starts it the way a training container does, inside an emulated
``opt/ml`` tree: the ``process`` backend and the benchmarks both use it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

from defects.training import contract, interruption

TRAINING_PACKAGE = Path(contract.__file__).resolve().parent
ENTRY_SCRIPT = "train.py"
# The script SageMaker (and every backend) starts: it runs the training package's main.
_LAUNCHER = '''"""The training entry point: python train.py --name value ..."""

import sys

from defects.training.train import main

sys.exit(main())
'''


def source_dir(destination: Path) -> Path:
    """The entry point's code as every backend ships it: ``train.py`` beside a ``defects``
    package that holds only the training modules (no host code, no SDK)."""
    if destination.exists():
        shutil.rmtree(destination)
    package = destination / "defects" / "training"
    package.mkdir(parents=True)
    (destination / "defects" / "__init__.py").write_text('"""The training code of defects."""\n')
    for module in sorted(TRAINING_PACKAGE.glob("*.py")):
        shutil.copyfile(module, package / module.name)
    (destination / ENTRY_SCRIPT).write_text(_LAUNCHER)
    return destination


def entry_point_command(script: Path, hyperparameters: Mapping[str, object]) -> list[str]:
    """``python <script> --name value ...``, as SageMaker starts a script-mode entry point."""
    return [sys.executable, str(script), *contract.hyperparameter_arguments(hyperparameters)]


def run_entry_point(
    script: Path,
    base: Path,
    channels: Mapping[str, Path],
    hyperparameters: Mapping[str, object],
    log_file: TextIO,
    on_line: Callable[[str], None] = lambda line: None,
    on_start: Callable[[int], None] = lambda pid: None,
) -> int:
    """Run the entry point ``script`` in its own folder, with the hyperparameters as
    arguments and the ``SM_*`` variables of the ``opt/ml`` tree at ``base``; return its exit
    status.

    The entry point never talks to AWS: it gets no endpoint and no credentials. Each line of
    its output goes to ``log_file`` as it arrives (follow a long run with ``tail -f``) and
    to ``on_line``; ``on_start`` learns its process id. If this is interrupted, the entry
    point is stopped too; if this process dies, the entry point stops itself
    (:func:`defects.training.interruption.watch_parent`).
    """
    # The script runs in its own folder: a relative path would no longer lead to it.
    script = script.resolve()
    for sub_path in (contract.MODEL_PATH, contract.OUTPUT_DATA_PATH, contract.CHECKPOINTS_PATH):
        (base / sub_path).mkdir(parents=True, exist_ok=True)
    environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    environment.update(contract.job_environment(base, channels, hyperparameters))
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    environment["PYTHONUNBUFFERED"] = "1"
    # The entry point stops when this process dies, however it dies (interruption.py).
    environment[interruption.PARENT_PID_ENV] = str(os.getpid())
    process = subprocess.Popen(
        entry_point_command(script, hyperparameters),
        cwd=script.parent,  # as in the container, where the source folder is the working one
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    assert process.stdout is not None
    try:
        on_start(process.pid)
        for line in process.stdout:
            log_file.write(line)
            log_file.flush()
            on_line(line)
        return process.wait()
    except BaseException:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise
