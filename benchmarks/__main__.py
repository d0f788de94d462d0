"""``python -m benchmarks [--quick] [--out DIR] [--only NAMES] [--with-local]``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

# Before anything imports TensorFlow: its start-up chatter is not a result.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from rich.console import Console  # noqa: E402

from benchmarks import machine as machine_info  # noqa: E402
from benchmarks.context import Context, full_sizes, quick_sizes  # noqa: E402
from benchmarks.report import render, report_document, write_report  # noqa: E402
from benchmarks.suite import NAMES, run_suite  # noqa: E402


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown benchmark(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(NAMES)}"
        )
    return names


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure the defects tool against the usual way of doing each step, "
        "side by side, and write a JSON report.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: the whole suite in a few minutes"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results"), help="where reports go"
    )
    parser.add_argument(
        "--only", type=_names, default=None, help=f"comma-separated subset of: {', '.join(NAMES)}"
    )
    parser.add_argument(
        "--with-local",
        action="store_true",
        help="in --quick mode, also time a local-backend job (full mode does when it can)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".cache/benchmarks"),
        help="cache of synthetic photos, reused between runs",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    mode = "quick" if arguments.quick else "full"
    out_dir: Path = arguments.out
    log_dir = out_dir / "logs" / stamp
    log_dir.mkdir(parents=True, exist_ok=True)
    arguments.data_dir.mkdir(parents=True, exist_ok=True)
    # As the CLI does: the embedded S3 server would log every request.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    progress = Console(stderr=True)
    machine = machine_info.describe()
    progress.print(f"[bold]machine[/]: {machine['summary']}", highlight=False)
    with tempfile.TemporaryDirectory(prefix="defects-bench-") as scratch:
        context = Context(
            quick=arguments.quick,
            sizes=quick_sizes() if arguments.quick else full_sizes(),
            data_dir=arguments.data_dir.resolve(),
            work_dir=Path(scratch),
            log_dir=log_dir.resolve(),
            with_local=arguments.with_local,
            console=progress,
        )
        results = run_suite(context, machine, arguments.only)
    seconds = time.perf_counter() - started
    created = datetime.now(UTC).isoformat(timespec="seconds")
    document = report_document(results, machine, mode, created, seconds)
    document["logs"] = f"logs/{stamp}"
    report_path = write_report(document, out_dir, stamp)
    # Piped into a file, the table keeps a readable width instead of 80 columns.
    render(results, machine, mode, Console(width=None if sys.stdout.isatty() else 160))
    progress.print(
        f"Report: {report_path} (and {out_dir / 'latest.json'}); logs in {log_dir}; "
        f"{seconds / 60:.1f} min.",
        highlight=False,
    )
    return 1 if any(result.status == "failed" for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
