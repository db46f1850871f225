"""`whisperq`: transcribe audio through a whisperq deployment, and run the local twin."""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import click

from whisperq import constants
from whisperq.cli.client import ApiClient
from whisperq.cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_JOB_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
)
from whisperq.core.audio import content_type_for
from whisperq.core.errors import WhisperqError
from whisperq.local import state

DEFAULT_WAIT_TIMEOUT_S = 1800.0


class Context:
    """What every command shares: where the API is, how to report."""

    def __init__(self, api_url: str | None, state_dir: str | None, debug: bool, api_key: str | None = None):
        self._api_url = api_url
        self.api_key = api_key
        self.state_dir = state.state_dir(state_dir)
        self.debug = debug
        from rich.console import Console

        self.err = Console(stderr=True, highlight=False, soft_wrap=True)

    def api_url(self) -> str:
        """--api-url, else $WHISPERQ_API_URL, else the running local twin."""
        if self._api_url:
            return self._api_url
        running = state.read_state(self.state_dir)
        if running:
            return str(running["apiUrl"])
        raise CliError(
            f"no API to talk to: no local twin runs (state dir {self.state_dir}); start one with "
            "`whisperq local up`, or pass --api-url (or set WHISPERQ_API_URL) for a deployed stack",
            EXIT_UNREACHABLE,
        )

    def client(self) -> ApiClient:
        url = self.api_url()
        key = self.api_key
        if not key and not self._api_url:
            running = state.read_state(self.state_dir)
            key = running.get("apiKey") if running else None  # the twin's own key
        return ApiClient(url, api_key=key)


class WhisperqGroup(click.Group):
    """Turns whisperq's own errors into one line and an exit code; tracebacks only with --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except WhisperqError as exc:
            if ctx.obj is not None and getattr(ctx.obj, "debug", False):
                traceback.print_exc()
            raise CliError(exc.message, exc.exit_code) from exc
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=WhisperqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--api-url", envvar=constants.API_URL, help="The API of a deployed stack (default: the local twin).")
@click.option("--api-key", envvar=constants.API_KEY,
              help="API key of a deployed stack, sent as x-api-key (or set WHISPERQ_API_KEY).")
@click.option("--state-dir", envvar=constants.STATE_DIR, type=click.Path(file_okay=False),
              help="Where the local twin keeps its state file and log (default ~/.whisperq).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="whisperq")
@click.pass_context
def cli(ctx: click.Context, api_url: str | None, api_key: str | None, state_dir: str | None, debug: bool) -> None:
    """whisperq: queue-driven audio transcription with Whisper, on AWS or on a local twin."""
    ctx.obj = Context(api_url, state_dir, debug, api_key)


# --- transcription ---------------------------------------------------------------------------
def _transcribe_one(obj: Context, client: ApiClient, path: str, timeout_s: float) -> dict[str, Any]:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

    name = os.path.basename(path)
    content_type = content_type_for(name)
    job = client.create_upload(name, content_type)
    job_id = job["jobId"]
    size = os.path.getsize(path)
    interactive = obj.err.is_terminal
    if not interactive:
        obj.err.print(f"job {job_id}: uploading {name} ({size} bytes)")
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
                  console=obj.err, transient=True, disable=not interactive) as progress:
        task = progress.add_task(f"uploading {name}", total=size)
        client.upload(job, path, on_progress=lambda n: progress.advance(task, n))
        progress.update(task, description=f"job {job_id[:8]}: waiting", completed=size)

        def on_update(current: dict[str, Any]) -> None:
            if interactive:
                progress.update(task, description=f"job {job_id[:8]}: {current['status']}")
            else:
                obj.err.print(f"job {job_id}: {current['status']}")

        try:
            return client.wait(job_id, timeout_s, on_update)
        except KeyboardInterrupt:
            obj.err.print(f"stopped waiting; job {job_id} keeps running: `whisperq status {job_id}`")
            raise


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--timeout", "timeout_s", type=float, default=DEFAULT_WAIT_TIMEOUT_S, show_default=True,
              help="Seconds to wait for each job.")
@click.option("--json", "as_json", is_flag=True, help="Print the final jobs as JSON instead of the transcripts.")
@click.pass_obj
def transcribe(obj: Context, files: tuple[str, ...], timeout_s: float, as_json: bool) -> None:
    """Upload audio FILES (wav, flac, mp3, m4a, ogg, webm), wait, and print their transcripts."""
    client = obj.client()
    failures = []
    results = []
    for path in files:
        job = _transcribe_one(obj, client, path, timeout_s)
        results.append(job)
        if job["status"] == "FAILED":
            failures.append(f"{os.path.basename(path)} (job {job['jobId']}): {job.get('error')}")
        elif not as_json:
            click.echo(client.download_text(job["transcriptUrl"]), nl=False)
    if as_json:
        click.echo(json.dumps(results if len(results) > 1 else results[0], indent=2))
    if failures:
        raise CliError("transcription failed: " + "; ".join(failures), EXIT_JOB_FAILED)


@cli.command()
@click.argument("job_id")
@click.pass_obj
def status(obj: Context, job_id: str) -> None:
    """Print a job (JSON): status, timings, and download URLs once it is COMPLETED."""
    click.echo(json.dumps(obj.client().status(job_id), indent=2))


# --- the local twin --------------------------------------------------------------------------
@cli.group()
def local() -> None:
    """Run the local twin of the pipeline (moto server, API front, Whisper workers) on 127.0.0.1."""


@local.command("up")
@click.option("--port", type=int, default=0, show_default=True, help="API port (0: any free port).")
@click.option("--workers", type=int, default=None,
              help="Worker processes (default: queue_config max_concurrency).")
@click.option("--extra-api-key", "extra_api_keys", multiple=True, envvar="WHISPERQ_LOCAL_EXTRA_API_KEYS",
              help="Accept this API key too (a second client); repeatable.")
@click.pass_obj
def local_up(obj: Context, port: int, workers: int | None, extra_api_keys: tuple[str, ...]) -> None:
    """Start the twin in the foreground; Ctrl-C or SIGTERM stops everything it started."""
    from whisperq.local.twin import Twin, TwinAlreadyRunning

    stop_requested = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    twin = Twin(api_port=port, state_directory=obj.state_dir, workers=workers, extra_api_keys=list(extra_api_keys))
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        obj.err.print("starting the local twin (moto server, resources, API front, workers)...")
        try:
            twin.start()
        except TwinAlreadyRunning:
            raise
        settings = twin.settings
        assert settings is not None
        q = settings.queue
        lines = [
            "whisperq local twin is up",
            f"  API        {twin.api_url}  (x-api-key: in the state file; the CLI uses it)",
            f"  AWS (moto) {twin.endpoint_url}",
            f"  workers    {len(twin._workers)} x {settings.engine} {settings.model} "
            f"(batch {q.batch_size}, window {q.max_batching_window_s} s, "
            f"visibility {q.visibility_timeout_s} s, maxReceiveCount {q.max_receive_count})",
            f"  log        {twin.log_path}",
            f"  state      {obj.state_dir / state.STATE_FILE}",
            "Press Ctrl-C to stop.",
        ]
        click.echo("\n".join(lines))
        sys.stdout.flush()
        while not stop_requested:
            time.sleep(0.3)
            for index in twin.supervise():
                obj.err.print(f"worker {index} exited; started a new one")
        obj.err.print("stopping the local twin...")
    finally:
        twin.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    obj.err.print("stopped")


@local.command("status")
@click.pass_obj
def local_status(obj: Context) -> None:
    """Print where the running twin is (JSON); exit 5 when none runs."""
    running = state.read_state(obj.state_dir)
    if not running:
        raise CliError(f"no local twin is running (state dir {obj.state_dir})", EXIT_UNREACHABLE)
    click.echo(json.dumps(running, indent=2))


@local.command("down")
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True)
@click.pass_obj
def local_down(obj: Context, timeout_s: float) -> None:
    """Stop the running twin (as Ctrl-C in its terminal would) and wait until it has."""
    running = state.read_state(obj.state_dir)
    if not running:
        obj.err.print("no local twin is running")
        return
    pid = int(running["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s

    def stopped() -> bool:
        # The twin removes its state file as the last step of stopping.
        return not state.pid_alive(pid) or state.read_state(obj.state_dir) is None

    while not stopped() and time.monotonic() < deadline:
        time.sleep(0.2)
    if not stopped():
        raise CliError(f"the twin (pid {pid}) did not stop within {timeout_s:.0f} s", EXIT_UNREACHABLE)
    obj.err.print(f"stopped the local twin (pid {pid})")


@cli.command()
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--timeout", "timeout_s", type=float, default=600.0, show_default=True)
@click.pass_obj
def demo(obj: Context, file: str | None, timeout_s: float) -> None:
    """Start a private twin, transcribe FILE (default: the bundled example) through the public path
    (API, pre-signed upload, S3 event, SQS, worker, DynamoDB), print the transcript, shut down."""
    from whisperq.local.twin import Twin

    path = file or _bundled_example()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="whisperq-demo-") as workdir:
        twin = Twin(log_file=os.path.join(workdir, "twin.log"))
        obj.err.print("starting a private local twin...")
        with twin:
            up_s = time.perf_counter() - started
            obj.err.print(f"twin up in {up_s:.1f} s (API {twin.api_url}); transcribing {path}")
            client = ApiClient(twin.api_url, api_key=twin.api_key)
            job = _transcribe_one(obj, client, path, timeout_s)
            if job["status"] != "COMPLETED":
                raise CliError(f"demo job failed: {job.get('error')}", EXIT_JOB_FAILED)
            click.echo(client.download_text(job["transcriptUrl"]), nl=False)
            details = job.get("details", {})
            obj.err.print(
                f"job {job['jobId']} COMPLETED: {details.get('audioDurationS')} s of audio, "
                f"queue wait {details.get('queueWaitS')} s, transcription {details.get('transcribeS')} s "
                f"({details.get('realTimeFactor')}x real time, {details.get('engine')} {details.get('model')})"
            )
        obj.err.print(f"demo finished in {time.perf_counter() - started:.1f} s; twin stopped")


@cli.group()
def infra() -> None:
    """The AWS deployment (infra/template.yaml)."""


@infra.command("params")
@click.option("--format", "fmt", type=click.Choice(["sam", "json"]), default="sam", show_default=True,
              help="sam: Key=Value pairs for `sam deploy --parameter-overrides`; json: an object.")
def infra_params(fmt: str) -> None:
    """Print the template parameters that carry queue_config (defaults, WHISPERQ_QUEUE_* variables and
    WHISPERQ_QUEUE_CONFIG applied), after checking them against the limits of AWS."""
    from whisperq import queue_config

    params = queue_config.load().validate("aws").sam_parameters()
    if fmt == "json":
        click.echo(json.dumps(params, indent=2))
    else:
        click.echo(" ".join(f"{name}={value}" for name, value in params.items()))


def _bundled_example() -> str:
    candidates = [Path.cwd() / "examples" / "meeting.wav",
                  Path(__file__).resolve().parents[3] / "examples" / "meeting.wav"]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    raise CliError("no bundled example found (examples/meeting.wav); pass a FILE", EXIT_USAGE)


def main() -> None:
    cli.main(prog_name="whisperq")


if __name__ == "__main__":
    main()
