"""CLI errors: one line on stderr and a documented exit code (the table in docs/usage.md)."""

from __future__ import annotations

import click

from whisperq.core.errors import ExitCode

# The exit codes the CLI's own code names (the table itself: whisperq.core.errors.ExitCode).
EXIT_UNEXPECTED = ExitCode.UNEXPECTED
EXIT_USAGE = ExitCode.USAGE
EXIT_NOT_FOUND = ExitCode.NOT_FOUND
EXIT_CONFLICT = ExitCode.CONFLICT
EXIT_UNREACHABLE = ExitCode.UNREACHABLE
EXIT_JOB_FAILED = ExitCode.JOB_FAILED
EXIT_INVARIANT = ExitCode.INVARIANT
EXIT_INTERRUPTED = ExitCode.INTERRUPTED


class CliError(click.ClickException):
    """An error the CLI reports as one line, with its own exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_UNEXPECTED):
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[misc]  # click's is a class attribute; each error has its own
