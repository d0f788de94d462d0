"""The README's Python API example runs as it is written, and prints no TensorFlow
start-up lines (a notebook user would see them on every call)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
TENSORFLOW_LINES = ("cuInit", "cuda drivers", "oneDNN", "absl::InitializeLog", "cpu_feature_guard")


def api_example() -> str:
    section = README.read_text().split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "the Python API section holds one example"
    return str(blocks[0])


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """The example in a fresh Python, as a notebook runs it: none of the developer's
    settings, and no TF_CPP_MIN_LOG_LEVEL (the CLI sets it; the API cannot count on it)."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "DEFECTS_")) and name != "TF_CPP_MIN_LOG_LEVEL"
    }
    environment["PYTHONPATH"] = str(README.parent)
    return subprocess.run(
        [sys.executable, "-c", api_example()],
        capture_output=True,
        text=True,
        cwd=tmp_path_factory.mktemp("api"),
        env=environment,
    )


def test_the_readme_api_example_runs(example_run: subprocess.CompletedProcess[str]) -> None:
    assert example_run.returncode == 0, example_run.stderr
    out = example_run.stdout.splitlines()
    assert out[0].startswith("succeeded: job defects-")
    assert len(eval(out[1])) == 1  # One validation accuracy per epoch.
    assert len([line for line in out if line.startswith("data/synthetic/")]) == 24


def test_the_readme_api_example_prints_no_tensorflow_start_up_lines(
    example_run: subprocess.CompletedProcess[str],
) -> None:
    assert example_run.returncode == 0, example_run.stderr
    shown = [
        line
        for line in example_run.stderr.splitlines()
        if any(word in line for word in TENSORFLOW_LINES)
    ]
    assert shown == []
