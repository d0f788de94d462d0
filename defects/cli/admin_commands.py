"""The commands around the jobs: config, doctor, and the S3 server."""

from __future__ import annotations

import sys
from typing import Any

import click

from defects.backends.base import Check
from defects.cli.options import json_option, pop_settings, settings_options
from defects.console import err, out
from defects.errors import DefectsError


@click.command()
@settings_options
@json_option(
    "print the settings as JSON: {setting: {value, source}}, and the hyperparameters under "
    "'hyperparameters'"
)
def config(as_json: bool, **kwargs: Any) -> None:
    """Print the settings with their sources, and the hyperparameters.

    A value comes from a flag, else the environment, else the settings file (defects.toml,
    or [tool.defects] in pyproject.toml, in the working folder), else the default. The
    hyperparameters (type, default, allowed values) are the schema every backend passes."""
    from defects.backends import check_name
    from defects.training import contract

    settings = pop_settings(kwargs)
    check_name(settings.backend)
    rows = settings.described()
    hyperparameters = {
        spec.name: {
            "type": spec.kind,
            "default": spec.default,
            "allowed": spec.bounds_text() or spec.metavar or "",
            "help": spec.help,
        }
        for spec in contract.HYPERPARAMETERS
    }
    if as_json:
        values: dict[str, Any] = {
            name: {"value": value, "source": source} for name, value, source in rows
        }
        out.print_json(data={**values, "hyperparameters": hyperparameters})
        return
    from rich.table import Table

    table = Table("setting", "value", "source")
    for row in rows:
        table.add_row(*row)
    out.print(table)
    described = Table("hyperparameter", "type", "default", "allowed", "help")
    for name, spec in hyperparameters.items():
        described.add_row(
            name, str(spec["type"]), str(spec["default"]), str(spec["allowed"]), str(spec["help"])
        )
    out.print(described)


@click.command()
@click.option("--all", "every", is_flag=True, help="check every backend, not only the chosen one")
@json_option("print the checks as JSON: {backend: [{name, ok, detail, hint}]}")
@settings_options
def doctor(every: bool, as_json: bool, **kwargs: Any) -> None:
    """Check what the chosen backend needs on this machine.

    Exits 1 when a check of the chosen backend (of any backend, with --all) failed, so that
    scripts and CI can stop early; the fix is printed next to each failure."""
    from dataclasses import asdict, replace

    from rich.text import Text

    from defects.backends import BACKENDS, backend_class, check_name

    settings = pop_settings(kwargs)
    names = list(BACKENDS) if every else [check_name(settings.backend)]
    report: dict[str, list[dict[str, Any]]] = {}
    for name in names:
        try:
            checks = backend_class(name)(replace(settings, backend=name)).checks()
        except DefectsError as error:
            checks = [Check("available", False, error.message, hint=error.hint)]
        report[name] = [asdict(item) for item in checks]
    failed = any(not item["ok"] for checks in report.values() for item in checks)
    if as_json:
        out.print_json(data=report)
    else:
        for name, items in report.items():
            out.print(name, style="bold", highlight=False)
            for item in items:
                mark = ("ok", "green") if item["ok"] else ("FAIL", "red")
                out.print(Text.assemble("  ", mark, f" {item['name']}: {item['detail']}"))
                if not item["ok"] and item["hint"]:
                    out.print(f"       fix: {item['hint']}", highlight=False)
    sys.exit(1 if failed else 0)


@click.group()
def s3() -> None:
    """Run the embedded S3 server on its own."""


@s3.command()
@click.option("--port", type=click.IntRange(0, 65535), default=5555, show_default=True)
def serve(port: int) -> None:
    """Run an S3 server on 127.0.0.1 in the foreground.

    Several commands can then share staged data: set AWS_ENDPOINT_URL_S3 as printed."""
    import time

    from defects.storage import start_emulator

    server, url = start_emulator(port)
    out.print(f"export AWS_ENDPOINT_URL_S3={url}", highlight=False)
    err.print("S3 server running (in memory; Ctrl-C stops it and forgets everything).")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
