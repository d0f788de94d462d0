"""The README's Python API example runs as it is written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def api_example() -> str:
    section = README.read_text().split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "the Python API section holds one example"
    return str(blocks[0])


def test_the_readme_api_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(api_example(), str(README), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("succeeded: job defects-")
    assert len(eval(out[1])) == 1  # One validation accuracy per epoch.
    assert len([line for line in out if line.startswith("data/synthetic/")]) == 24
