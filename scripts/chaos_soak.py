"""The fanned-out chaos run, again and again, while other processes keep every core busy.

The chaos run of tests/e2e/test_fanout.py (every job fanned out into chunks; AWS errors, crashes, a
worker killed every 5 s, corrupt uploads) is a race detector: a race that shows only under load shows
here. Each run gets its own seed, its own twin and its own state directory; the burners run at the
same priority as the twin the whole time. Writes one line per run and a summary (JSON) to --out.

    .venv/bin/python scripts/chaos_soak.py --runs 20 --out docs/reliability/chaos-fanout-soak.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Short timeouts so that retries and dead letters play out in seconds (tests/e2e/test_reliability.py FAST).
FAST = {"WHISPERQ_QUEUE_VISIBILITY_TIMEOUT_S": "3", "WHISPERQ_QUEUE_MAX_RECEIVE_COUNT": "3",
        "WHISPERQ_QUEUE_WAIT_TIME_S": "1"}


def chaos_command(state_dir: Path, out_dir: Path, seed: int) -> list[str]:
    """The chaos run of tests/e2e/test_fanout.py, with `seed`."""
    return [sys.executable, "-m", "whisperq.cli.main", "--state-dir", str(state_dir), "loadtest",
            "--jobs", "6", "--rate", "1", "--synthetic-seconds", "45",
            "--set", "synthetic_seconds_per_audio_second=0.05", "--set", "fanout_min_duration_s=20",
            "--set", "chunk_s=10",
            "--faults", f"aws_errors=0.1,crash=0.05,kill_every_s=5,corrupt=0.2,seed={seed}",
            "--timeout", "150", "--out", str(out_dir)]


def burn(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    """Keep one core busy until told to stop."""
    while not stop.is_set():
        for _ in range(100_000):
            pass


def run_once(seed: int, timeout_s: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="whisperq-soak-") as scratch:
        started = time.monotonic()
        try:
            result = subprocess.run(chaos_command(Path(scratch) / "state", Path(scratch) / "out", seed),
                                    capture_output=True, text=True, timeout=timeout_s, cwd=ROOT,
                                    env={**os.environ, **FAST})
        except subprocess.TimeoutExpired:
            return {"seed": seed, "ok": False, "wallS": round(time.monotonic() - started, 1),
                    "failed": [f"did not end within {timeout_s:.0f} s"]}
        wall_s = round(time.monotonic() - started, 1)
        try:
            chaos = json.loads(result.stdout)["chaos"]
        except (json.JSONDecodeError, KeyError):
            return {"seed": seed, "ok": False, "wallS": wall_s, "exit": result.returncode,
                    "failed": [f"no verdict: {result.stderr[-500:]}"]}
        facts = chaos["facts"]
        fanned = [c for c in chaos["checks"] if c["invariant"].startswith("each chunk")]
        return {"seed": seed, "ok": chaos["ok"] and result.returncode == 0, "wallS": wall_s,
                "failed": [f"{c['invariant']}: {c['detail']}" for c in chaos["checks"] if not c["ok"]],
                "jobs": facts["jobs"], "completed": facts["final"]["COMPLETED"],
                "corrupt": facts["kinds"]["corrupt"], "workersKilled": facts["workersKilledByTheTwin"],
                "retries": facts["retries"], "attempts": facts["attempts"],
                "fannedOut": fanned[0]["detail"] if fanned else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 2, help="busy processes (default: one a core)")
    parser.add_argument("--run-timeout", type=float, default=600.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    stop = multiprocessing.Event()
    burners = [multiprocessing.Process(target=burn, args=(stop,), daemon=True) for _ in range(args.burners)]
    for burner in burners:
        burner.start()
    runs = []
    started = time.monotonic()
    try:
        for seed in range(args.first_seed, args.first_seed + args.runs):
            outcome = run_once(seed, args.run_timeout)
            runs.append(outcome)
            print(json.dumps(outcome), flush=True)
    finally:
        stop.set()
        for burner in burners:
            burner.join(timeout=5)
    passed = sum(run["ok"] for run in runs)
    summary = {
        "command": "scripts/chaos_soak.py " + " ".join(sys.argv[1:]),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
        "burners": args.burners, "runs": len(runs), "passed": passed, "wallS": round(time.monotonic() - started, 1),
        "each": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"{passed} of {len(runs)} chaos runs passed, with {args.burners} busy processes beside them", file=sys.stderr)
    return 0 if passed == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
