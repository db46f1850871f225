"""Evaluating the pipeline: `whisperq loadtest` and `whisperq report`."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import click

from whisperq import constants
from whisperq.cli.app import Context, cli
from whisperq.cli.errors import EXIT_INVARIANT, EXIT_USAGE, CliError


def _pairs(items: tuple[str, ...], option: str) -> dict[str, list[str]]:
    parsed: dict[str, list[str]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name or not values:
            raise CliError(f"{option} takes NAME=VALUE[,VALUE...], got {item!r}", EXIT_USAGE)
        parsed[name.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    return parsed


def _environ(setting: dict[str, str]) -> dict[str, str]:
    """Environment for a twin: engine settings and queue_config knobs by their short names."""
    env = {}
    for name, value in setting.items():
        if name == "engine":
            env[constants.ENGINE] = value
        elif name in ("cpu_threads", "compute_type", "model", "engine_batch_size", "worker_nice",
                      "api_concurrency", "api_provisioned", "moto_processes") or name.startswith("synthetic_"):
            env[f"WHISPERQ_{name.upper()}"] = value
        else:
            env[constants.QUEUE_CONFIG_PREFIX + name.upper()] = value
    return env


def _run_on_twin(obj: Context, spec: Any, out_dir: Path, setting: dict[str, str],
                 fault_spec: Any = None) -> dict[str, Any]:
    from whisperq.aws.clients import Clients
    from whisperq.client import Client
    from whisperq.evaluation import runs
    from whisperq.faults import ENV as FAULTS_ENV
    from whisperq.faults import POISON_MARK
    from whisperq.local.twin import LOCAL_CREDENTIALS, Twin

    out_dir.mkdir(parents=True, exist_ok=True)
    environ = _environ(setting)
    if fault_spec is not None:
        environ[FAULTS_ENV] = str(fault_spec)
        if fault_spec.poison:
            environ[constants.FAULT_POISON_KEY] = POISON_MARK
    twin = Twin(environ=environ, log_file=str(out_dir / "twin.log"))
    obj.err.print(f"{out_dir.name}: starting a twin with {setting or 'the defaults'}")
    with twin:
        assert twin.settings is not None and twin.resources is not None
        config = {"target": "local twin", "engine": twin.settings.engine, "model": twin.settings.model,
                  "cpuThreads": twin.engine_threads, "workers": twin.worker_count,
                  "queueConfig": twin.settings.queue.to_dict(), "setting": setting}
        target = runs.Target(Client(twin.api_url, api_key=twin.api_key), twin.settings,
                             Clients(twin.settings, LOCAL_CREDENTIALS), twin.api_key_id, config,
                             twin.resources.queue_url, twin.resources.dlq_url, twin=twin)
        return runs.run(spec, out_dir, target, lambda message: obj.err.print(f"{out_dir.name}: {message}"),
                        fault_spec)


# AWS's X-Ray indexes annotations: the traces with a job id are whisperq's stages.
AWS_TRACE_FILTER = "annotation.jobId"


def _run_on_stack(obj: Context, spec: Any, out_dir: Path, trace_filter: str | None) -> dict[str, Any]:
    """One run against a deployed stack: its API (--api-url, --api-key), and its queue, table and
    bucket by the names in the environment (WHISPERQ_QUEUE_NAME, ...), through boto3's usual
    credentials."""
    from whisperq.aws.api_keys import ApiKeys
    from whisperq.aws.clients import Clients
    from whisperq.config import Settings
    from whisperq.evaluation import runs

    if not obj.api_key:
        raise CliError("--stack needs the stack's API URL and key (--api-url, --api-key or WHISPERQ_API_URL, "
                       "WHISPERQ_API_KEY)", EXIT_USAGE)
    settings = Settings.from_env(endpoint_url=obj.endpoint_url)
    clients = Clients(settings)
    api = obj.client()
    owner = "loadtest" if spec.direct else ApiKeys(clients).id_of(obj.api_key)
    config = {"target": "deployed stack", "apiUrl": api.base_url, "region": settings.region,
              "queue": settings.queue_name, "queueConfig": settings.queue.to_dict()}
    target = runs.Target(api, settings, clients, owner, config, trace_filter=trace_filter or None)
    return runs.run(spec, out_dir, target, lambda message: obj.err.print(f"{out_dir.name}: {message}"))


@cli.command()
@click.option("--jobs", "job_count", type=click.IntRange(1, 10_000), required=True, help="Jobs to submit.")
@click.option("--rate", "rate_per_s", type=float, help="Jobs submitted per second (default: a burst).")
@click.option("--burst", is_flag=True, help="Submit as fast as possible (the default).")
@click.option("--audio", "audio", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Audio files to send, in turn (repeatable).")
@click.option("--synthetic-seconds", type=float, help="Send generated tones of this length instead.")
@click.option("--engine", type=click.Choice(["faster-whisper", "openai-whisper", "synthetic"]),
              help="Engine of the twin's workers.")
@click.option("--direct", is_flag=True, help="Create jobs and put objects straight to S3, skipping the API.")
@click.option("--set", "settings", multiple=True, help="A knob for the twin, NAME=VALUE (batch_size=5).")
@click.option("--sweep", "sweeps", multiple=True,
              help="A knob to sweep, NAME=V1,V2 (repeatable: the runs are every combination).")
@click.option("--timeout", "timeout_s", type=float, default=600.0, show_default=True,
              help="Seconds each run may take before unfinished jobs are reported as such.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where results go (default: loadtest-<time>).")
@click.option("--stack", is_flag=True,
              help="Load a deployed stack (its API from --api-url/--api-key, its queue, table and bucket by the "
                   "WHISPERQ_* names) instead of private local twins; --set, --sweep, --engine do not apply.")
@click.option("--trace-filter", default=AWS_TRACE_FILTER, show_default=True,
              help="X-Ray filter expression for the run's traces on a deployed stack.")
@click.option("--faults", "fault_text", metavar="SPEC",
              help="A chaos run: faults for the twin (aws_errors=0.2,crash=0.05,kill_every_s=5,slow=0.1,slow_s=6,"
                   "poison=0.05,corrupt=0.05,seed=1); then the faults go off, the DLQ is replayed and the "
                   "invariants are checked (exit 12 if one fails).")
@click.option("--baseline", is_flag=True,
              help="Also time the bare engine (same engine, threads, audio, one process per worker) and report "
                   "the pipeline efficiency: service audio s per wall s / bare engine's.")
@click.option("--probe", "probe_per_s", type=click.FloatRange(0, 50), default=0.2, show_default=True,
              help="Control-plane latency during the run: rounds a second of GET /jobs/{id} and POST /jobs "
                   "(each probe job is cancelled), timed; 0 turns it off. A round a second costs the twin "
                   "about a tenth of a core.")
@click.pass_obj
def loadtest(obj: Context, job_count: int, rate_per_s: float | None, burst: bool, audio: tuple[str, ...],
             synthetic_seconds: float | None, engine: str | None, direct: bool, settings: tuple[str, ...],
             sweeps: tuple[str, ...], timeout_s: float, out_dir: str | None, stack: bool, trace_filter: str,
             fault_text: str | None, baseline: bool, probe_per_s: float) -> None:
    """Flood the queue: submit jobs through the real path on a private local twin (one per
    configuration of a --sweep), wait for all of them, record every job and the queue's depth.

    Results: DIR/<run>/jobs.jsonl, samples.jsonl, summary.json; `whisperq report DIR` plots them."""
    from whisperq.evaluation.loadtest import LoadSpec

    if burst and rate_per_s:
        raise CliError("--burst and --rate exclude each other", EXIT_USAGE)
    try:
        spec = LoadSpec(jobs=job_count, rate_per_s=rate_per_s, audio=audio, synthetic_seconds=synthetic_seconds,
                        direct=direct, timeout_s=timeout_s, probe_per_s=probe_per_s).validate()
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    root = Path(out_dir or f"loadtest-{time.strftime('%Y%m%d-%H%M%S')}")
    fault_spec = None
    if fault_text is not None:
        from whisperq.faults import FaultSpec, FaultSpecError

        try:
            fault_spec = FaultSpec.parse(fault_text)
        except FaultSpecError as exc:
            raise CliError(f"--faults: {exc}", EXIT_USAGE) from exc
        if stack or sweeps or baseline:
            raise CliError("--faults runs on one private twin: not with --stack, --sweep or --baseline", EXIT_USAGE)
    if stack:
        if settings or sweeps or engine or baseline:
            raise CliError("--stack loads the stack as deployed: change its knobs with `make deploy` "
                           "(--set, --sweep, --engine and --baseline are for local twins)", EXIT_USAGE)
        summary = _run_on_stack(obj, spec, root / "run-01", trace_filter)
        click.echo(json.dumps(summary, indent=2))
        obj.err.print(f"results in {root}; plot them with `whisperq report {root}`")
        return
    base = {name: values[0] for name, values in _pairs(settings, "--set").items()}
    if engine:
        base["engine"] = engine
    elif synthetic_seconds is not None:
        base.setdefault("engine", "synthetic")
    matrix = _pairs(sweeps, "--sweep")
    combos = [dict(zip(matrix, values, strict=True)) for values in itertools.product(*matrix.values())] or [{}]
    summaries = []
    for index, combo in enumerate(combos, start=1):
        setting = {**base, **combo}
        label = ",".join(f"{k}={v}" for k, v in combo.items()) or "run"
        run_dir = root / (f"run-{index:02d}-{label}" if matrix else "run-01")
        summary = _run_on_twin(obj, spec, run_dir, setting, fault_spec)
        if baseline:
            summary = _with_baseline(obj, summary, run_dir, setting, spec)
        summaries.append(summary)
        obj.err.print(f"{run_dir.name}: {summary['completed']}/{summary['jobs']} completed, "
                      f"{summary['jobsPerS']} jobs/s, {summary['audioSecondsPerWallSecond']} audio s per wall s, "
                      f"latency p50 {summary['latencyS']['p50']} s{_probe_line(summary)}")
    click.echo(json.dumps({"out": str(root), "runs": summaries}, indent=2) if len(summaries) > 1
               else json.dumps(summaries[0], indent=2))
    obj.err.print(f"results in {root}; plot them with `whisperq report {root}`")
    if fault_spec is not None:
        _show_verdict(obj, summaries[0]["chaos"])


def _probe_line(summary: dict[str, Any]) -> str:
    """The control plane's latency, as the probe saw it: p50/p99 of each route."""
    routes = summary.get("probe") or {}
    return "".join(f"; {route} p50/p99 {r['p50Ms']}/{r['p99Ms']} ms ({r['requests']})"
                   for route, r in routes.items() if not route.startswith("DELETE"))


def _show_verdict(obj: Context, verdict: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="chaos run: invariants", title_justify="left")
    for column in ("invariant", "result", "detail"):
        table.add_column(column, overflow="fold")
    for check in verdict["checks"]:
        table.add_row(check["invariant"], "ok" if check["ok"] else "FAILED", check["detail"])
    obj.err.print(table)
    if not verdict["ok"]:
        failed = sum(not c["ok"] for c in verdict["checks"])
        raise CliError(f"{failed} invariant(s) failed under faults (details in the table and summary.json)",
                       EXIT_INVARIANT)


def _with_baseline(obj: Context, summary: dict[str, Any], run_dir: Path, setting: dict[str, str],
                   spec: Any) -> dict[str, Any]:
    from whisperq.evaluation.baseline import bare_engine_throughput

    if not spec.audio:
        raise CliError("--baseline needs --audio files (the bare engine transcribes the same audio)", EXIT_USAGE)
    workers = summary["config"]["workers"]
    repeats = max(1, -(-summary["completed"] // workers))  # the same work, shared as the workers shared it
    obj.err.print(f"{run_dir.name}: timing the bare engine ({workers} process(es) x {repeats} files)")
    bare = bare_engine_throughput(_environ(setting), list(spec.audio), workers, repeats)
    service = summary["audioSecondsPerWallSecond"] or 0.0
    summary = {**summary, "bareEngine": bare,
               "pipelineEfficiency": round(service / bare["audioSecondsPerWallSecond"], 3)}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    obj.err.print(f"{run_dir.name}: bare engine {bare['audioSecondsPerWallSecond']} audio s per wall s; "
                  f"pipeline efficiency {summary['pipelineEfficiency']}")
    return summary


@cli.command()
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Where the report goes (default: DIR).")
@click.pass_obj
def report(obj: Context, dirs: tuple[str, ...], out_dir: str | None) -> None:
    """Turn load-test results into report.html (self-contained, with PNG plots) and report.md."""
    from whisperq.evaluation.report import find_runs, write_report

    runs = find_runs([Path(d) for d in dirs])
    if not runs:
        raise CliError("no load-test runs (summary.json) under " + ", ".join(dirs), EXIT_USAGE)
    html, markdown = write_report(runs, Path(out_dir or dirs[0]))
    obj.err.print(f"wrote {html} and {markdown}")
