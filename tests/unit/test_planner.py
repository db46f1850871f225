"""The planner: its simulation against what the twin measured, and the AWS behaviour it models."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

from tests.conftest import ROOT
from whisperq.cli.main import cli
from whisperq.planner import calibration, load
from whisperq.planner.costs import cost
from whisperq.planner.simulate import Pipeline, simulate

DOCS = ROOT / "docs"


@pytest.mark.parametrize("run", ["concurrency/run-01-max_concurrency=1", "concurrency/run-02-max_concurrency=2"])
def test_planner_when_simulating_the_twins_own_runs_then_drain_and_p95_within_15_percent(run):
    """The twin's configuration (its workers as the cap, no ramp, warm workers) and its measured service
    times (the run's own real-time factor; the per-job overhead from the overhead run) predict the
    committed load test's drain time and p95 latency."""
    measured = json.loads((DOCS / "performance" / run / "summary.json").read_text())
    figures = calibration.calibrate(DOCS)
    twin = Pipeline(max_concurrency=measured["config"]["workers"], rtf_per_thread=measured["meanRealTimeFactor"],
                    overhead_s=figures["overhead_s"].value, cold_start_s=0.0, ramp=False, memory_mb=1769,
                    fanout_min_duration_s=0)
    per_job = measured["audioSeconds"] / measured["jobs"]
    predicted = simulate([(0.0, per_job)] * measured["jobs"], twin)  # a burst: every upload at once
    assert predicted.completed == measured["completed"]
    assert predicted.drain_s == pytest.approx(measured["drainS"], rel=0.15)
    assert predicted.latency(0.95) == pytest.approx(measured["latencyS"]["p95"], rel=0.15)


def test_calibration_when_read_then_every_figure_comes_from_a_committed_file():
    figures = calibration.calibrate(DOCS)
    assert set(figures) == {"rtf_per_thread", "thread_speedup", "overhead_s", "cold_start_s", "split_s_per_audio_s",
                            "diarize_added"}
    assert 0.05 < figures["diarize_added"].value < 0.2  # measured: diarization against tiny.en's transcription
    assert 0.2 < figures["thread_speedup"].value < 2.5  # measured: two threads against one
    assert 5 < figures["rtf_per_thread"].value < 60 and 0 < figures["overhead_s"].value < 2
    assert all(".json" in f.source or "run-" in f.source for f in figures.values())


def test_plan_when_every_job_is_diarized_then_the_work_and_its_cost_grow_by_the_measured_share():
    figures = calibration.calibrate(DOCS)
    arrivals = [(float(i), 120.0) for i in range(200)]
    plain = Pipeline(fanout_min_duration_s=0, rtf_per_thread=20.0, diarize_added=figures["diarize_added"].value)
    diarized = simulate(arrivals, replace(plain, diarized_share=1.0))
    base = simulate(arrivals, plain)
    assert diarized.busy_s == pytest.approx(base.busy_s * (1 + figures["diarize_added"].value), rel=0.05)


def test_esm_when_a_burst_arrives_then_5_at_once_then_300_more_a_minute_up_to_the_cap():
    burst = [(0.0, 600.0)] * 2000  # 10-minute files, no fan-out: every message is a long execution
    outcome = simulate(burst, Pipeline(max_concurrency=1000, fanout_min_duration_s=0, rtf_per_thread=1.0))
    assert outcome.peak_concurrency == 1000 and outcome.cold_starts == 1000
    # 5 at first, +5 a second: the cap of 1000 is reached after about 199 s, not at once.
    quick = simulate(burst[:200], Pipeline(max_concurrency=1000, fanout_min_duration_s=0, rtf_per_thread=60.0))
    assert quick.peak_concurrency < 200


def test_failures_when_every_attempt_fails_then_dead_lettered_after_max_receive_count():
    outcome = simulate([(0.0, 60.0)] * 10, Pipeline(failure_rate=1.0, max_receive_count=3, visibility_timeout_s=30,
                                                    fanout_min_duration_s=0))
    assert (outcome.completed, outcome.dead_lettered, outcome.attempts) == (0, 10, 30)
    flaky = simulate([(0.0, 60.0)] * 200, Pipeline(failure_rate=0.2, visibility_timeout_s=30,
                                                   fanout_min_duration_s=0))
    assert flaky.completed + flaky.dead_lettered == 200 and flaky.attempts > 200
    assert flaky.latency(0.99) > 30  # a retry waits out the visibility timeout


def test_fanout_when_a_long_file_meets_idle_workers_then_chunks_in_parallel_and_sooner():
    whole = simulate([(0.0, 3600.0)], Pipeline(fanout_min_duration_s=0, ramp=False, max_concurrency=60))
    fanned = simulate([(0.0, 3600.0)], Pipeline(fanout_min_duration_s=300, chunk_s=60, ramp=False,
                                                max_concurrency=60))
    assert fanned.chunks == 60 and fanned.fanned_out == 1 and fanned.completed == 1
    assert fanned.latency(0.5) < whole.latency(0.5) / 5  # 60 chunks at once, after a split and cold starts


def test_cost_when_priced_then_lambda_dominates_and_per_audio_hour_is_positive():
    outcome = simulate(load.spread(1000, 0, 3600, [(60.0, 1.0)], __import__("random").Random(1)), Pipeline())
    bill = cost(outcome, Pipeline())
    assert bill["total"] == pytest.approx(sum(bill[k] for k in ("lambda", "sqs", "s3", "dynamodb", "apiGateway")),
                                          abs=0.001)
    assert bill["lambda"] > bill["sqs"] and 0 < bill["perAudioHour"] < 1
    assert bill["audioHours"] == pytest.approx(1000 / 60, rel=0.01)


def test_plan_cli_when_run_then_outputs_and_a_sweep_plot(tmp_path):
    result = CliRunner().invoke(cli, ["plan", "--jobs-per-day", "2000", "--mix", "60:0.9,1800:0.1",
                                      "--burst", "500@8+30", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["jobs"] == 2500 and plan["completed"] == 2500 and plan["cost"]["perAudioHour"] > 0
    assert plan["latencyS"]["p50"] <= plan["latencyS"]["p95"] <= plan["latencyS"]["p99"]
    swept = CliRunner().invoke(cli, ["plan", "--jobs-per-day", "500", "--sweep-concurrency", "2,20",
                                     "--sweep-memory", "1769,3538", "--plot", str(tmp_path / "s.png"), "--json"])
    assert swept.exit_code == 0, swept.output
    rows = json.loads(swept.stdout)
    assert [(r["setting"], r["value"]) for r in rows] == [("max_concurrency", 2), ("max_concurrency", 20),
                                                          ("memory_mb", 1769), ("memory_mb", 3538)]
    assert rows[0]["latencyS"]["p95"] > rows[1]["latencyS"]["p95"]  # a cap of 2 queues the work
    assert (tmp_path / "s.png").stat().st_size > 10_000
    bad = CliRunner().invoke(cli, ["plan", "--mix", "sixty"])
    assert bad.exit_code == 2 and "SECONDS:SHARE" in bad.output


def test_plan_when_run_plain_then_an_aws_deployments_defaults_and_latencies_an_aws_user_would_see():
    """Found by a new user: a plain `whisperq plan` planned the twin's two workers (p95 of 52,749 s)."""
    result = CliRunner().invoke(cli, ["plan", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["pipeline"]["maxConcurrency"] == 100 and plan["pipeline"]["memoryMb"] == 3008
    assert plan["completed"] == plan["jobs"] == 10_000
    assert plan["latencyS"]["p95"] < 3600  # an hour-long file, fanned out across idle functions, in minutes


def test_plan_sweep_when_the_knob_held_fixed_is_not_given_then_says_which_value_it_used():
    swept = CliRunner().invoke(cli, ["plan", "--jobs-per-day", "200", "--sweep-memory", "1769,3538", "--json"])
    assert swept.exit_code == 0, swept.output
    assert "sweeping memory at max concurrency 100" in swept.stderr
    assert [r["pipeline"]["maxConcurrency"] for r in json.loads(swept.stdout)] == [100, 100]


def test_calibration_when_shown_then_every_path_it_cites_exists():
    result = CliRunner().invoke(cli, ["plan", "--calibration", "--json"])
    assert result.exit_code == 0, result.output
    cited = [word.strip(",:();'") for figure in json.loads(result.stdout).values()
             for word in figure["source"].split() if word.startswith("docs/")]
    assert len(cited) >= 4 and all((ROOT / path).exists() for path in cited), cited


def test_models_when_profiled_then_tiny_and_base_measured_and_the_rest_estimates_that_say_so():
    from whisperq.planner.models import profiles

    known = profiles(DOCS)
    assert set(known) == {"tiny.en", "base", "small", "medium", "large-v3", "large-v3-turbo", "distil-large-v3"}
    assert known["tiny.en"].measured and known["base"].measured and 0.4 < known["base"].speed < 0.9
    estimates = [p for p in known.values() if not p.measured]
    assert all(p.source.startswith("estimate (") and "parameters" in p.source for p in estimates)
    # Bigger is slower, heavier and needs a bigger function (never more than Lambda's 10,240 MB).
    order = ["tiny.en", "base", "small", "medium", "large-v3"]
    assert [known[m].speed for m in order] == sorted((known[m].speed for m in order), reverse=True)
    assert [known[m].function_memory_mb for m in order] == sorted(known[m].function_memory_mb for m in order)
    assert known["large-v3"].function_memory_mb == 10240 and known["tiny.en"].function_memory_mb == 3008


def test_plan_when_a_model_is_named_then_its_speed_memory_and_the_longest_file_one_invocation_takes_whole():
    def plan(model: str) -> dict:
        result = CliRunner().invoke(cli, ["plan", "--model", model, "--jobs-per-day", "500", "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    tiny, small, large = plan("tiny.en"), plan("small"), plan("large-v3")
    assert tiny["pipeline"]["rtf"] > small["pipeline"]["rtf"] > large["pipeline"]["rtf"]
    assert large["pipeline"]["memoryMb"] == 10240
    assert tiny["cost"]["perAudioHour"] < small["cost"]["perAudioHour"] < large["cost"]["perAudioHour"]
    # Fan-out is what lets a large model finish an hour-long file: whole, one invocation takes minutes of audio.
    assert large["pipeline"]["wholeFileLimitS"] < 3600 < tiny["pipeline"]["wholeFileLimitS"]
    shown = CliRunner().invoke(cli, ["plan", "--calibration", "--model", "large-v3"])
    assert shown.exit_code == 0 and "estimate (" in shown.output and "large-v3" in shown.output
    unknown = CliRunner().invoke(cli, ["plan", "--model", "whisper-9"])
    assert unknown.exit_code == 2 and "tiny.en, base, small" in unknown.output
