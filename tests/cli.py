"""The one way tests drive the command line in this process: ``run_cli("run", "--epochs",
"1")`` gives the exit status, stdout and stderr, as a shell would see them. (A test that needs
a terminal, a process group or signals starts ``python -m defects`` instead: see
``tests.terminal`` and ``tests.conftest.start_defects``.)"""

from __future__ import annotations

import contextlib
import io


def run_cli(*argv: str) -> tuple[int, str, str]:
    """Run ``defects ARGV...``, capturing its output; returns (exit code, stdout, stderr)."""
    from defects.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(argv))
            code = 0
        except SystemExit as exit_info:
            code = int(exit_info.code or 0)
    return code, out.getvalue(), err.getvalue()
