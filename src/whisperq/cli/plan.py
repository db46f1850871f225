"""`whisperq plan`: what a deployed stack does with a given load, and what it costs, before deploying."""

from __future__ import annotations

import json
import random
import time
from dataclasses import replace
from typing import Any

import click

from whisperq import queue_config
from whisperq.cli.app import Context, cli
from whisperq.core.capacity import FUNCTION_MEMORY_MB
from whisperq.planner import calibration, load, models
from whisperq.planner.costs import Prices, cost
from whisperq.planner.simulate import Pipeline, simulate

TEMPLATE_MEMORY_MB = FUNCTION_MEMORY_MB  # infra/template.yaml's TranscriberMemoryMb default


def _values(figures: dict[str, calibration.Figure]) -> dict[str, Any]:
    return {name: figure.value for name, figure in figures.items()}


def _with(pipeline: Pipeline, name: str, value: Any) -> Pipeline:
    changes: dict[str, Any] = {name: value}
    return replace(pipeline, **changes)


def _model_figures(figures: dict[str, calibration.Figure],
                   profile: models.ModelProfile) -> dict[str, calibration.Figure]:
    """The engine's figures for another model than tiny.en: its speed against tiny.en's, its load time."""
    if profile.name == "tiny.en":
        return {}
    rtf = figures["rtf_per_thread"]
    return {
        "rtf_per_thread": calibration.Figure("rtf_per_thread", round(rtf.value * profile.speed, 3),
                                             f"tiny.en's {rtf.value} x {profile.name}'s speed against it, "
                                             f"{profile.speed} ({profile.source})"),
        "cold_start_s": calibration.Figure("cold_start_s", round(calibration.RUNTIME_INIT_S + profile.load_s, 2),
                                           f"{calibration.RUNTIME_INIT_S} s for Lambda's runtime + {profile.name}'s "
                                           f"load, {profile.load_s} s ({profile.source})"),
    }


def _pipeline(figures: dict[str, calibration.Figure], **settings: Any) -> Pipeline:
    config = queue_config.load(target="aws")  # an AWS deployment's (the template's defaults)
    base = Pipeline(max_concurrency=config.max_concurrency, visibility_timeout_s=config.visibility_timeout_s,
                    max_receive_count=config.max_receive_count, fanout_min_duration_s=config.fanout_min_duration_s,
                    chunk_s=config.chunk_s, **_values(figures))
    return replace(base, **{k: v for k, v in settings.items() if v is not None})


def run_plan(arrivals: list[tuple[float, float]], pipeline: Pipeline, prices: Prices) -> dict[str, Any]:
    started = time.perf_counter()
    outcome = simulate(arrivals, pipeline)
    return {
        "jobs": outcome.jobs, "completed": outcome.completed, "deadLettered": outcome.dead_lettered,
        "audioHours": round(outcome.audio_s / 3600, 1), "drainS": round(outcome.drain_s, 1),
        "latencyS": {q: round(outcome.latency(v), 1) for q, v in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
        "peakConcurrency": outcome.peak_concurrency, "coldStarts": outcome.cold_starts,
        "fannedOut": outcome.fanned_out, "chunks": outcome.chunks, "attempts": outcome.attempts,
        "cost": cost(outcome, pipeline, prices),
        "pipeline": {"maxConcurrency": pipeline.cap, "memoryMb": pipeline.memory_mb, "vcpus": round(pipeline.vcpus, 2),
                     "threads": pipeline.threads, "rtf": round(pipeline.rtf, 1), "failureRate": pipeline.failure_rate,
                     "diarizedShare": pipeline.diarized_share,
                     # The longest file one invocation transcribes whole; longer ones must fan out.
                     "wholeFileLimitS": round(pipeline.rtf * queue_config.load(target="aws").function_timeout_s)},
        "simulatedInS": round(time.perf_counter() - started, 2),
    }


@cli.command()
@click.option("--jobs-per-day", type=click.IntRange(0), default=10_000, show_default=True,
              help="Jobs arriving at random over --hours.")
@click.option("--hours", type=click.FloatRange(min=0.01), default=24.0, show_default=True)
@click.option("--burst", help="Extra jobs at once: COUNT@HOUR+MINUTES, e.g. 20000@8+60 (8:00 to 9:00).")
@click.option("--trace", "trace_file", type=click.Path(exists=True, dir_okay=False),
              help="Arrivals from a JSON-lines file ({t, durationS}; a load test's jobs.jsonl works).")
@click.option("--mix", default="60:0.8,3600:0.2", show_default=True,
              help="Audio durations in seconds and their share of jobs.")
@click.option("--max-concurrency", type=click.IntRange(2, 1000), help="MaximumConcurrency (default: the template's).")
@click.option("--reserved-concurrency", type=click.IntRange(1))
@click.option("--model", default="tiny.en", show_default=True,
              help="The Whisper model the function runs: tiny.en and base measured here, small, medium, large-v3, "
                   "large-v3-turbo and distil-large-v3 estimated (--calibration --model NAME says from what).")
@click.option("--memory-mb", type=click.IntRange(128, 10240), default=None,
              help=f"Function memory (default: the model's own size, {TEMPLATE_MEMORY_MB} MB for tiny.en and base).")
@click.option("--failure-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of attempts that fail (and come back after the visibility timeout).")
@click.option("--fanout-min-duration", "fanout_min_duration_s", type=float, help="Default: queue_config.")
@click.option("--diarized", "diarized_share", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="The share of jobs that ask for speakers (diarization's measured time is added to theirs).")
@click.option("--chunk", "chunk_s", type=float, help="Chunk length in seconds (default: queue_config).")
@click.option("--sweep-concurrency", help="Comma-separated caps to compare, e.g. 50,100,200.")
@click.option("--sweep-memory", help="Comma-separated memory sizes in MB to compare, e.g. 1769,3008,5307.")
@click.option("--plot", type=click.Path(dir_okay=False), help="With a sweep: cost and p95 against it, as PNG.")
@click.option("--calibration", "show_calibration", is_flag=True, help="Show the measured figures and their sources.")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def plan(obj: Context, jobs_per_day: int, hours: float, burst: str | None, trace_file: str | None, mix: str,
         max_concurrency: int | None, reserved_concurrency: int | None, model: str, memory_mb: int | None,
         failure_rate: float,
         fanout_min_duration_s: float | None, diarized_share: float, chunk_s: float | None,
         sweep_concurrency: str | None, sweep_memory: str | None, plot: str | None, show_calibration: bool, seed: int,
         as_json: bool) -> None:
    """Simulate the AWS pipeline under a load: drain time, latency percentiles, peak concurrency, dead
    letters, and cost per audio hour. The engine's speed and the per-job overhead come from this
    project's committed measurements (--calibration shows which)."""
    figures = calibration.calibrate()
    known = models.profiles(calibration.DOCS)
    if model not in known:
        raise click.UsageError(f"--model {model!r} is not one the planner knows: {', '.join(known)}")
    profile = known[model]
    if show_calibration:
        figures = {**figures, **_model_figures(figures, profile)}
        obj.emit({name: {"value": f.value, "source": f.source} for name, f in figures.items()}, as_json,
                 "\n".join(f"{f.name} = {f.value}\n    from {f.source}" for f in figures.values()))
        return
    memory_mb = memory_mb or profile.function_memory_mb
    chooser = random.Random(seed)
    durations = load.parse_mix(mix)
    if trace_file:
        arrivals = load.trace(trace_file)
    else:
        arrivals = load.spread(jobs_per_day, 0.0, hours * 3600, durations, chooser) if jobs_per_day else []
    if burst:
        count, _, when = burst.partition("@")
        hour, _, minutes = when.partition("+")
        arrivals = sorted(arrivals + load.spread(int(count), float(hour) * 3600, float(minutes or 1) * 60,
                                                 durations, chooser))
    if not arrivals:
        raise click.UsageError("no jobs to plan: give --jobs-per-day, --burst or --trace")
    pipeline = _pipeline({**figures, **_model_figures(figures, profile)}, max_concurrency=max_concurrency,
                         reserved_concurrency=reserved_concurrency,
                         memory_mb=memory_mb, failure_rate=failure_rate, fanout_min_duration_s=fanout_min_duration_s,
                         chunk_s=chunk_s, diarized_share=diarized_share)
    sweep = [("max_concurrency", int(v)) for v in (sweep_concurrency or "").split(",") if v] + \
            [("memory_mb", int(v)) for v in (sweep_memory or "").split(",") if v]
    if sweep_memory and max_concurrency is None:
        obj.err.print(f"sweeping memory at max concurrency {pipeline.cap} (an AWS deployment's default); pass "
                      "--max-concurrency to plan for the cap you deploy")
    if sweep_concurrency and memory_mb == TEMPLATE_MEMORY_MB:
        obj.err.print(f"sweeping concurrency at {memory_mb} MB of function memory (the template's default); pass "
                      "--memory-mb to plan for another size")
    if not sweep:
        result = run_plan(arrivals, pipeline, Prices())
        obj.emit(result, as_json, _human(result))
        return
    rows = [{"setting": name, "value": value, **run_plan(arrivals, _with(pipeline, name, value), Prices())}
            for name, value in sweep]
    if plot:
        from whisperq.planner.plots import sweep_plot

        sweep_plot(rows, plot)
    obj.emit(rows, as_json, "\n".join(f"{r['setting']}={r['value']}: p95 {r['latencyS']['p95']} s, drain "
                                      f"{r['drainS']} s, peak {r['peakConcurrency']}, ${r['cost']['perAudioHour']}"
                                      f" per audio hour" for r in rows))


def _human(result: dict[str, Any]) -> str:
    c, lat = result["cost"], result["latencyS"]
    return "\n".join([
        f"{result['jobs']} jobs, {result['audioHours']} audio hours: {result['completed']} completed, "
        f"{result['deadLettered']} dead-lettered",
        f"drain {result['drainS']} s; latency p50 {lat['p50']} s, p95 {lat['p95']} s, p99 {lat['p99']} s",
        f"peak concurrency {result['peakConcurrency']} (cap {result['pipeline']['maxConcurrency']}), "
        f"{result['coldStarts']} cold starts, {result['fannedOut']} jobs fanned out into {result['chunks']} chunks",
        f"cost ${c['total']}: Lambda ${c['lambda']}, SQS ${c['sqs']}, S3 ${c['s3']}, DynamoDB ${c['dynamodb']}, "
        f"API Gateway ${c['apiGateway']}; ${c['perAudioHour']} per audio hour",
        f"({c['prices']}; simulated in {result['simulatedInS']} s)",
        json.dumps(result["pipeline"]),
    ])
