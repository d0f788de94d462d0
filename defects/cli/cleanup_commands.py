"""The commands that free space: rm (job folders) and gc (data no job refers to, and copies
a job folder does not need). Both list what they would remove, with sizes, and ask."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from defects.cli.options import json_option, runs_dir_option
from defects.console import err, out
from defects.dataset import DATA_DIR
from defects.errors import DefectsError
from defects.settings import resolve

if TYPE_CHECKING:
    from defects.jobs.cleanup import Removal

yes_option = click.option("-y", "--yes", is_flag=True, help="remove without asking")
dry_run_option = click.option("--dry-run", is_flag=True, help="list what would go; remove nothing")


def _confirmed(removals: list[Removal], yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise DefectsError(
            "Nothing was removed: there is no terminal to ask whether to go ahead.",
            hint="Pass --yes to remove without asking (see the list above, or --dry-run).",
            headline="removal not confirmed",
        )
    from defects.jobs.cleanup import human_size

    total = human_size(sum(removal.size for removal in removals))
    return click.confirm(f"Remove these {len(removals)} item(s), {total}?", err=True)


def _carry_out(
    removals: list[Removal], roots: list[Path], yes: bool, dry_run: bool, as_json: bool
) -> None:
    from rich.table import Table

    from defects.jobs.cleanup import human_size, remove

    total = sum(removal.size for removal in removals)
    if not as_json:
        if not removals:
            out.print("Nothing to remove.", highlight=False)
            return
        table = Table("path", "size", "why", title=f"to remove: {human_size(total)}")
        for removal in removals:
            table.add_row(str(removal.path), human_size(removal.size), removal.reason)
        out.print(table)
    removed = False
    if removals and not dry_run and _confirmed(removals, yes):
        remove(removals, roots)
        removed = True
    if as_json:
        out.print_json(
            data={
                "removed": removed,
                "bytes": total,
                "items": [removal.as_dict() for removal in removals],
            }
        )
    elif removed:
        out.print(f"Removed {len(removals)} item(s), {human_size(total)} freed.", highlight=False)
    elif not dry_run:
        err.print("Nothing removed.", highlight=False)


@click.command()
@click.argument("job_names", metavar="JOB...", nargs=-1, required=True)
@click.option("--force", is_flag=True, help="remove a running job's folder too")
@yes_option
@dry_run_option
@json_option("print JSON")
@runs_dir_option
def rm(
    job_names: tuple[str, ...],
    force: bool,
    yes: bool,
    dry_run: bool,
    as_json: bool,
    runs_dir: Path | None,
) -> None:
    """Remove the folders of the JOBs (latest is the newest job)."""
    from defects.jobs.cleanup import plan_rm

    root = resolve({"runs_dir": runs_dir}).runs_dir
    _carry_out(plan_rm(root, job_names, force), [root], yes, dry_run, as_json)


@click.command()
@click.option(
    "--failed",
    is_flag=True,
    help="also remove failed, interrupted and stopped jobs' folders (a tuning job's trials "
    "that have a model stay with it)",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=DATA_DIR,
    show_default=True,
    help="where synthetic and prepared data is",
)
@yes_option
@dry_run_option
@json_option("print JSON")
@runs_dir_option
def gc(
    failed: bool, data_dir: Path, yes: bool, dry_run: bool, as_json: bool, runs_dir: Path | None
) -> None:
    """Remove data that no job needs.

    Synthetic and prepared data that no job refers to, and the copies of a fetched job's
    model and output that its backend left in the job folder."""
    from defects.jobs.cleanup import plan_gc

    root = resolve({"runs_dir": runs_dir}).runs_dir
    _carry_out(plan_gc(root, data_dir, failed), [root, data_dir], yes, dry_run, as_json)
