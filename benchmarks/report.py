"""Results, the table a person reads, and the JSON report a program reads."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

Status = Literal["ok", "skipped", "failed"]

# Bumped when the JSON layout changes, so that readers of old reports can tell.
REPORT_FORMAT = 1


@dataclass(frozen=True)
class Result:
    """One comparison: what was measured, against what, the ratio and the target it must meet.

    ``met`` is None when the comparison has no target (it is reported for information) or
    when the benchmark did not run; ``status`` and ``reason`` say which.
    """

    key: str
    benchmark: str
    title: str
    measured: str = ""
    baseline: str = ""
    ratio: float | None = None
    ratio_text: str = ""
    target: str = ""
    met: bool | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    status: Status = "ok"
    reason: str = ""
    note: str = ""


def times(value: float) -> str:
    return f"{value:.2f}x"


def percent(value: float) -> str:
    return f"{100 * value:.1f} %"


def skipped(key: str, benchmark: str, title: str, target: str, reason: str) -> Result:
    return Result(key, benchmark, title, target=target, status="skipped", reason=reason)


def failed(key: str, benchmark: str, title: str, target: str, reason: str) -> Result:
    return Result(key, benchmark, title, target=target, status="failed", reason=reason)


def _clean(value: Any) -> Any:
    # JSON has no NaN or infinity; a figure that could not be computed becomes null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def report_document(
    results: list[Result], machine: dict[str, Any], mode: str, created: str, seconds: float
) -> dict[str, Any]:
    return _clean(
        {
            "format": REPORT_FORMAT,
            "created": created,
            "mode": mode,
            "seconds": round(seconds, 1),
            "machine": machine,
            "summary": {
                "met": sum(1 for r in results if r.met is True),
                "missed": sum(1 for r in results if r.met is False),
                "informational": sum(1 for r in results if r.status == "ok" and r.met is None),
                "skipped": sum(1 for r in results if r.status == "skipped"),
                "failed": sum(1 for r in results if r.status == "failed"),
            },
            "benchmarks": [asdict(result) for result in results],
        }
    )


def write_report(document: dict[str, Any], out_dir: Path, stamp: str) -> Path:
    """Write ``report-<stamp>.json`` and a copy as ``latest.json``; returns the first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2) + "\n"
    path = out_dir / f"report-{stamp}.json"
    path.write_text(text)
    (out_dir / "latest.json").write_text(text)
    return path


def _verdict(result: Result) -> str:
    if result.status == "skipped":
        return "[yellow]skipped[/]"
    if result.status == "failed":
        return "[red bold]failed[/]"
    if result.met is None:
        return "[dim]n/a[/]"
    return "[green bold]yes[/]" if result.met else "[red bold]no[/]"


def render(results: list[Result], machine: dict[str, Any], mode: str, console: Console) -> None:
    table = Table(title=f"defects benchmarks ({mode})", show_lines=True)
    table.add_column("benchmark", style="bold", max_width=30)
    table.add_column("measured", max_width=46)
    table.add_column("compared with", max_width=46)
    table.add_column("ratio", justify="right")
    table.add_column("target", max_width=26)
    table.add_column("met", justify="center")
    for result in results:
        if result.status == "ok":
            table.add_row(
                result.title,
                result.measured,
                result.baseline,
                result.ratio_text,
                result.target,
                _verdict(result),
            )
        else:
            table.add_row(
                result.title, f"[dim]{result.reason}[/]", "", "", result.target, _verdict(result)
            )
    console.print(table)
    console.print(f"[bold]machine[/]: {machine.get('summary', '')}", highlight=False)
    for result in results:
        if result.status == "ok" and result.note:
            console.print(f"[bold]{result.title}[/]: {result.note}", highlight=False)
