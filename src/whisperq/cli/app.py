"""The `whisperq` group: one context object for every command, and one place errors become a line."""

from __future__ import annotations

import json
import traceback
from typing import Any

import click

from whisperq import constants
from whisperq.cli.errors import EXIT_INTERRUPTED, EXIT_UNEXPECTED, EXIT_UNREACHABLE, EXIT_USAGE, CliError
from whisperq.client import Client
from whisperq.core.errors import WhisperqError
from whisperq.local import state


class Context:
    """What every command shares: where the API is, the key, how to report."""

    def __init__(self, api_url: str | None, state_dir: str | None, debug: bool, api_key: str | None = None,
                 endpoint_url: str | None = None):
        self._api_url = api_url
        self.api_key = api_key
        self.endpoint_url = endpoint_url
        self.state_dir = state.state_dir(state_dir)
        self.debug = debug
        from rich.console import Console

        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        self.out = Console(highlight=False, soft_wrap=True)

    def twin(self) -> dict[str, Any] | None:
        return state.read_state(self.state_dir)

    def api_url(self) -> str:
        """--api-url, else $WHISPERQ_API_URL, else the running local twin."""
        if self._api_url:
            return self._api_url
        running = self.twin()
        if running:
            return str(running["apiUrl"])
        raise CliError(
            f"no API to talk to: no local twin runs (state dir {self.state_dir}); start one with "
            "`whisperq local up`, or pass --api-url (or set WHISPERQ_API_URL) for a deployed stack",
            EXIT_UNREACHABLE,
        )

    def client(self, model: str | None = None) -> Client:
        url = self.api_url()
        if not url.startswith(("http://", "https://")):
            raise CliError(f"--api-url {url!r} has no scheme: give the whole URL, e.g. http://{url}", EXIT_USAGE)
        key = self.api_key
        if not key and not self._api_url:
            running = self.twin()
            key = running.get("apiKey") if running else None  # the twin's own key
        return Client(url, api_key=key, model=model)

    def emit(self, data: Any, as_json: bool, human: Any = None) -> None:
        """Print data: JSON when asked (or when stdout is not a terminal and there is no plain form),
        else the human form (a rich renderable or text)."""
        if as_json or human is None:
            click.echo(json.dumps(data, indent=2))
        elif isinstance(human, str):
            click.echo(human)
        else:
            self.out.print(human)


class WhisperqGroup(click.Group):
    """Turns errors into one line and an exit code; tracebacks only with --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except WhisperqError as exc:
            if debug:
                traceback.print_exc()
            raise CliError(exc.message, exc.exit_code) from exc
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except Exception as exc:
            if debug:
                traceback.print_exc()
            raise CliError(f"unexpected error: {type(exc).__name__}: {exc} (rerun with --debug for details)",
                           EXIT_UNEXPECTED) from exc


@click.group(cls=WhisperqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--api-url", envvar=constants.API_URL, help="The API of a deployed stack (default: the local twin).")
@click.option("--api-key", envvar=constants.API_KEY,
              help="API key of a deployed stack, sent as x-api-key (or set WHISPERQ_API_KEY).")
@click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL",
              help="AWS endpoint for operator commands (dlq); default: the local twin, else AWS.")
@click.option("--state-dir", envvar=constants.STATE_DIR, type=click.Path(file_okay=False),
              help="Where the local twin keeps its state file and log (default ~/.whisperq).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="whisperq")
@click.pass_context
def cli(ctx: click.Context, api_url: str | None, api_key: str | None, endpoint_url: str | None,
        state_dir: str | None, debug: bool) -> None:
    """whisperq: queue-driven audio transcription with Whisper, on AWS or on a local twin.

    Shell completion: eval "$(_WHISPERQ_COMPLETE=bash_source whisperq)" (zsh_source, fish_source)."""
    ctx.obj = Context(api_url, state_dir, debug, api_key, endpoint_url)
