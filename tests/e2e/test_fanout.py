"""Fan-out on the real twin: a long file cut into chunks that both worker processes take, merged
back, with its progress on the CLI; and a chaos run whose jobs are all fanned out."""

from __future__ import annotations

import json

import pytest

from tests.conftest import EXAMPLES, normalised
from tests.e2e.conftest import run_cli, start_twin, stop_twin
from tests.e2e.test_reliability import FAST
from tests.wer import wer

pytestmark = pytest.mark.e2e

# The 123 s passage on an idle twin of two workers: a chunk for each (fanned out from 40 s, none under 20 s).
SMALL_CHUNKS = {"WHISPERQ_QUEUE_FANOUT_MIN_DURATION_S": "40", "WHISPERQ_QUEUE_CHUNK_S": "20"}


def test_transcribe_when_file_is_long_then_chunks_spread_over_workers_and_progress_shows_them(tmp_path):
    process, _ = start_twin(tmp_path / "state", {**SMALL_CHUNKS, "WHISPERQ_QUEUE_VISIBILITY_TIMEOUT_S": "60"})
    try:
        result = run_cli(tmp_path / "state", "transcribe", str(EXAMPLES / "passage.ogg"), timeout_s=300)
        assert result.returncode == 0, result.stderr
        text = normalised(result.stdout)
        truth = normalised((EXAMPLES / "passage.txt").read_text()).split()
        assert wer(truth, text.split()) < 0.25, text
        # Progress lines say how many chunks are done (stderr is not a terminal here: one line per change).
        chunk_lines = [line for line in result.stderr.splitlines() if "chunks)" in line]
        assert chunk_lines and chunk_lines[-1].startswith("passage.ogg: COMPLETED (2/2 chunks) (job "), result.stderr
        job_id = chunk_lines[-1].rsplit("(job ", 1)[1].rstrip(")")
        status = json.loads(run_cli(tmp_path / "state", "status", job_id, "--json").stdout)
        assert status["details"]["chunks"] == status["details"]["chunksDone"] == 2
        assert status["details"]["audioDurationS"] > 120 and status["details"]["splitS"] > 0
    finally:
        assert stop_twin(process) == 0


def test_chaos_run_when_every_job_is_fanned_out_then_every_invariant_holds(tmp_path):
    out = tmp_path / "chaos"
    # A job every two seconds on four workers: the queue does not back up even on a loaded machine, so jobs
    # fan out (a file is cut only for workers that would otherwise wait; a busy queue is not split). At one
    # a second on two workers, a CI machine slowed by other work saw every job queued behind another.
    result = run_cli(tmp_path / "state", "loadtest", "--jobs", "6", "--rate", "0.5", "--synthetic-seconds", "45",
                     "--set", "synthetic_seconds_per_audio_second=0.05", "--set", "fanout_min_duration_s=20",
                     "--set", "chunk_s=10", "--set", "max_concurrency=4",
                     "--faults", "aws_errors=0.1,crash=0.05,kill_every_s=5,corrupt=0.2,seed=3",
                     "--timeout", "150", "--out", str(out), env=FAST, timeout_s=500)
    assert result.returncode == 0, result.stderr[-3000:]
    chaos = json.loads(result.stdout)["chaos"]
    assert chaos["ok"], chaos["checks"]
    [chunks_check] = [c for c in chaos["checks"] if c["invariant"].startswith("each chunk")]
    assert chunks_check["ok"] and "0 fanned-out" not in chunks_check["detail"]
    facts = chaos["facts"]
    assert facts["workersKilledByTheTwin"] >= 1 and facts["retries"] > 0
    assert facts["final"]["COMPLETED"] == facts["jobs"] - facts["kinds"]["corrupt"]
