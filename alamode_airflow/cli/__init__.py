"""The ``alamode`` command: a thin layer over the a_la_mode library.

``main(argv) -> int`` never raises for expected failures: each AlamodeError subclass
maps to its own exit status (see ``a_la_mode.errors``), usage errors exit 2, and
``diff`` exits 1 when the files differ, like diff(1). An OSError that escapes a command
(the store, or a file it reads) is a StoreError: its path and reason are printed, with
an exit status of its own, instead of a traceback and the status 1 that ``diff`` and
``lineage --verify`` give their answers with.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click
from rich.console import Console

from a_la_mode import AlamodeError
from a_la_mode.errors import StoreError
from alamode_airflow.cli import gc_commands, store_commands
from alamode_airflow.cli.commands import cli

# Importing these modules adds their commands to the group defined in commands.
COMMAND_MODULES = (store_commands, gc_commands)

EXIT_OK = 0
EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default: sys.argv[1:]) and return the exit status."""
    _logs_to_stderr()
    try:
        try:
            result = cli.main(list(argv) if argv is not None else None, standalone_mode=False)
        except OSError as exc:
            raise _io_error(exc) from exc
    except AlamodeError as exc:
        Console(stderr=True, highlight=False).print(f"[bold red]error:[/] {exc}", markup=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        return EXIT_USAGE
    return result if isinstance(result, int) else EXIT_OK


def _logs_to_stderr() -> None:
    """Airflow's console log handler writes to stdout, and Airflow's own code logs while
    a store opens (an S3 connection's credentials, ...); the command's stdout is for
    its answers, which scripts parse (``--json``), so logs go to stderr."""
    import logging

    import airflow.settings  # noqa: F401  (configures logging once, before we move it)

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and _is_stdout(handler.stream):
            handler.setStream(_Stderr())
    # Airflow's structlog loggers (its hooks' ``self.log``) write to the file their
    # factory names, stdout when it names none.
    import structlog

    factory = structlog.get_config().get("logger_factory")
    if hasattr(factory, "io") and (factory.io is None or _is_stdout(factory.io)):
        factory.io = _Stderr()


def _is_stdout(stream) -> bool:
    return stream in (sys.stdout, sys.__stdout__) or getattr(stream, "name", "") == "<stdout>"


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written (tests swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _io_error(exc: OSError) -> StoreError:
    """``exc`` as a StoreError naming the path (fsspec's errors may carry none)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return StoreError(f"I/O error: {reason}", file=exc.filename)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
