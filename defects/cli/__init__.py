"""The ``defects`` command line.

Every command resolves the settings once (flag > ``DEFECTS_*`` environment > default),
validates the backend against the registry, and turns it into a backend object at the
boundary (:mod:`.options`). Errors the user can fix print a headline, a message and a hint
and exit 1 (2 for usage and configuration errors); anything else is an internal error with
its traceback.

Imports: anything below it; the heavy libraries only inside the command that needs them, so
that ``defects --help`` is instant.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import NoReturn

import click

# TensorFlow's C++ start-up chatter is not for users; set before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from defects import __version__, signals  # noqa: E402
from defects.cli import (  # noqa: E402
    admin_commands,
    cleanup_commands,
    job_commands,
    lifecycle_commands,
    manage_commands,
    result_commands,
    tune_commands,
)
from defects.console import err, setup_logging  # noqa: E402
from defects.errors import DefectsError, from_os_error  # noqa: E402


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-v", "--verbose", is_flag=True, help="more log output")
@click.version_option(__version__, "-V", "--version", prog_name="defects")
def cli(verbose: bool) -> None:
    """Train a phone-surface defect classifier: the same job on this machine, in the SageMaker
    container (DEFECTS_BACKEND=local) or on SageMaker (DEFECTS_BACKEND=sagemaker).

    Settings come from flags, the environment, the settings file ([tool.defects] in
    pyproject.toml, or defects.toml) or the defaults; `defects config` shows them."""
    setup_logging(verbose)


for _command in (
    job_commands.run,
    job_commands.train,
    job_commands.synth,
    job_commands.prepare,
    job_commands.stage,
    lifecycle_commands.fetch,
    tune_commands.tune,
    result_commands.history,
    result_commands.plot,
    result_commands.evaluate,
    result_commands.predict,
    manage_commands.jobs,
    manage_commands.describe,
    manage_commands.compare,
    manage_commands.logs,
    manage_commands.stop,
    cleanup_commands.rm,
    cleanup_commands.gc,
    admin_commands.config,
    admin_commands.doctor,
    admin_commands.s3,
):
    cli.add_command(_command)


def _report(error: DefectsError) -> None:
    from rich.text import Text

    err.print(Text.assemble(("error:", "bold red"), " ", (error.headline, "bold")))
    err.print(error.message, highlight=False)
    if error.hint:
        err.print(Text.assemble(("hint:", "bold"), f" {error.hint}"))


def main(argv: list[str] | None = None) -> None:
    try:
        # SIGTERM runs every clean-up Ctrl-C runs; it exits with 143, Ctrl-C with 130.
        with signals.sigterm_as_interrupt():
            cli.main(args=argv, prog_name="defects", standalone_mode=False)
    except click.exceptions.Abort as error:
        err.print("interrupted")
        sys.exit(signals.exit_status(error))
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except DefectsError as error:
        _report(error)
        sys.exit(error.exit_code)
    except KeyboardInterrupt as error:
        err.print("interrupted")
        sys.exit(signals.exit_status(error))
    except OSError as error:
        known = from_os_error(error)
        if known is None:
            _internal_error()
        _report(known)
        sys.exit(known.exit_code)
    except Exception:  # noqa: BLE001 - the last resort: say it is ours, keep the traceback.
        _internal_error()


def _internal_error() -> NoReturn:
    err.print("internal error", style="bold red", end="")
    err.print(" (a bug in defects; please report it):")
    traceback.print_exc()
    sys.exit(1)
