"""The commands around the jobs: config, doctor, and the S3 server."""

from __future__ import annotations

import sys
from typing import Any

import click

from defects.cli.options import pop_settings, settings_options
from defects.console import err, out
from defects.errors import DefectsError
from defects.settings import resolve


@click.command()
@settings_options
def config(**kwargs: Any) -> None:
    """Print every resolved setting and where it came from."""
    from rich.table import Table

    from defects.backends import check_name

    settings = pop_settings(kwargs)
    check_name(settings.backend)

    table = Table("setting", "value", "source")
    for row in settings.described():
        table.add_row(*row)
    out.print(table)


@click.command()
def doctor() -> None:
    """Check what every backend needs on this machine."""
    from defects.backends import BACKENDS, backend_class

    failures = 0
    for name in BACKENDS:
        try:
            backend = backend_class(name)(resolve({"backend": name}))
            checks = backend.checks()
        except DefectsError as error:
            out.print(f"[bold]{name}[/]: [red]unavailable[/] - {error}")
            failures += 1
            continue
        out.print(f"[bold]{name}[/]")
        for item in checks:
            mark = "[green]ok[/]" if item.ok else "[red]FAIL[/]"
            out.print(f"  {mark} {item.name}: {item.detail}")
            if not item.ok and item.hint:
                out.print(f"       fix: {item.hint}")
    sys.exit(0 if failures == 0 else 1)


@click.group()
def s3() -> None:
    """The embedded S3 server."""


@s3.command()
@click.option("--port", type=click.IntRange(0, 65535), default=5555, show_default=True)
def serve(port: int) -> None:
    """Run an S3 server on 127.0.0.1 in the foreground, for multi-command sessions."""
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
