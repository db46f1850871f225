"""CLI errors: one line on stderr and a documented exit code (the table in docs/usage.md)."""

from __future__ import annotations

import click

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_UNREACHABLE = 5
EXIT_JOB_FAILED = 6
EXIT_SERVICE_ERROR = 7
EXIT_TIMEOUT = 8
EXIT_AUTH = 9
EXIT_TWIN_RUNNING = 10
EXIT_TWIN_START = 11
EXIT_INVARIANT = 12  # a chaos run found an invariant broken
EXIT_INTERRUPTED = 130


class CliError(click.ClickException):
    """An error the CLI reports as one line, with its own exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_UNEXPECTED):
        super().__init__(message)
        self.exit_code = exit_code
