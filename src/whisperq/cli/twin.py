"""Running the local twin: `whisperq local up|status|down` and `whisperq demo`."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path

import click

from whisperq import constants
from whisperq.cli.app import Context, cli
from whisperq.cli.errors import EXIT_JOB_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, CliError
from whisperq.cli.transcribe import FileRun, Reporter, run_file
from whisperq.client import Client
from whisperq.local import memory, state


# --- the local twin --------------------------------------------------------------------------
def _models_environ(models: str | None) -> dict[str, str]:
    """--models tiny.en,base: the first is the default model (WHISPERQ_MODEL), all are the deployment's."""
    names = [name.strip() for name in (models or "").split(",") if name.strip()]
    if not names:
        return {}
    return {constants.MODEL: names[0], constants.MODELS: ",".join(names)}



@cli.group()
def local() -> None:
    """Run the local twin of the pipeline (moto server, API front, Whisper workers) on 127.0.0.1."""


@local.command("up")
@click.option("--port", type=int, default=0, show_default=True, help="API port (0: any free port).")
@click.option("--workers", type=int, default=None,
              help="Worker processes for each model (default: queue_config max_concurrency).")
@click.option("--models", default=None, metavar="MODEL,...",
              help="The models to serve, the default first (whisper-1 on the OpenAI route), each on a worker "
                   "pool and queue of its own, e.g. tiny.en,base (default: WHISPERQ_MODEL alone).")
@click.option("--extra-api-key", "extra_api_keys", multiple=True, envvar="WHISPERQ_LOCAL_EXTRA_API_KEYS",
              help="Accept this API key too (a second client); repeatable.")
@click.pass_obj
def local_up(obj: Context, port: int, workers: int | None, models: str | None,
             extra_api_keys: tuple[str, ...]) -> None:
    """Start the twin in the foreground; Ctrl-C or SIGTERM stops everything it started."""
    from whisperq.local.twin import Twin, TwinAlreadyRunning

    stop_requested = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    twin = Twin(api_port=port, state_directory=obj.state_dir, workers=workers, extra_api_keys=list(extra_api_keys),
                environ=_models_environ(models))
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
            f"  API        {twin.api_url}  (the CLI finds it and its key; `whisperq local env` prints both)",
            f"  AWS (moto) {twin.endpoint_url}  (DynamoDB: {twin.dynamodb_endpoint_url})",
            *(f"  workers    {twin.worker_count // len(settings.tiers)} x {settings.engine} {tier.model} "
              f"(queue {tier.queue_name(settings.queue_name)}{', default' if tier.default else ''})"
              for tier in settings.tiers),
            f"  queues     (batch {q.batch_size}, window {q.max_batching_window_s} s, "
            f"visibility {q.visibility_timeout_s} s, maxReceiveCount {q.max_receive_count})",
            f"  sources    s3://{', s3://'.join(settings.granted_buckets) or '(none granted)'}  "
            f"(stand-in for your own bucket); drop folder s3://{settings.bucket}/{settings.inbox or '(off)'}",
            f"  log        {twin.log_path}",
            *_faults_lines(settings.faults),
            f"  state      {obj.state_dir / state.STATE_FILE}",
            "Press Ctrl-C to stop.",
        ]
        click.echo("\n".join(lines))
        sys.stdout.flush()
        while not stop_requested:
            time.sleep(0.3)
            for index in twin.take_replacements():
                obj.err.print(f"worker {index} exited; started a new one")
        obj.err.print("stopping the local twin...")
    finally:
        twin.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    obj.err.print("stopped")


def _faults_lines(spec_text: str | None) -> list[str]:
    """The banner's word on WHISPERQ_FAULTS: which faults the twin plays, and which it cannot."""
    from whisperq.faults import FaultSpec

    spec = FaultSpec.parse(spec_text)
    if not spec.active:
        return []
    lines = [f"  FAULTS ON  {spec} (WHISPERQ_FAULTS): workers and the API misbehave on purpose"]
    if spec.poison or spec.corrupt:
        lines.append("             poison and corrupt choose what a load test uploads: they act in "
                     "`whisperq loadtest --faults`, not here")
    return lines


@local.command("status")
@click.pass_obj
def local_status(obj: Context) -> None:
    """Print where the running twin is (JSON); exit 5 when none runs."""
    running = state.read_state(obj.state_dir)
    if not running:
        raise CliError(f"no local twin is running (state dir {obj.state_dir})", EXIT_UNREACHABLE)
    # What its processes hold in memory now, together (resident sets, each counted once).
    running["residentMiB"] = memory.in_mib(memory.tree_rss(int(running["pid"]), []))["total"]
    click.echo(json.dumps(running, indent=2))


@local.command("env")
@click.pass_obj
def local_env(obj: Context) -> None:
    """Print the twin's API URL and key as shell exports, for the SDK and OpenAI's clients:
    eval "$(whisperq local env)"."""
    running = state.read_state(obj.state_dir)
    if not running:
        raise CliError(f"no local twin is running (state dir {obj.state_dir})", EXIT_UNREACHABLE)
    click.echo(f"export {constants.API_URL}={shlex.quote(running['apiUrl'])}")
    click.echo(f"export {constants.API_KEY}={shlex.quote(running['apiKey'])}")


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
            client = Client(twin.api_url, api_key=twin.api_key)
            with Reporter(obj) as reporter:
                run = run_file(client, reporter, FileRun(path), {}, True, timeout_s)
            if run.error or run.job is None:
                raise CliError(f"demo job failed: {run.error}", EXIT_JOB_FAILED)
            job = run.job
            click.echo(client.download_text(job["transcriptUrl"]), nl=False)
            details = job.get("details", {})
            obj.err.print(
                f"job {job['jobId']} COMPLETED: {details.get('audioDurationS')} s of audio, "
                f"queue wait {details.get('queueWaitS')} s, transcription {details.get('transcribeS')} s "
                f"({details.get('realTimeFactor')}x real time, {details.get('engine')} {details.get('model')})"
            )
        obj.err.print(f"demo finished in {time.perf_counter() - started:.1f} s; twin stopped")


def _bundled_example() -> str:
    candidates = [Path.cwd() / "examples" / "meeting.wav",
                  Path(__file__).resolve().parents[3] / "examples" / "meeting.wav"]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    raise CliError("no bundled example found (examples/meeting.wav); pass a FILE", EXIT_USAGE)
