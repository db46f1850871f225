"""The bare engine's throughput: the same engine, threads and audio as the service's workers, in a
loop, in as many processes as the service has workers, with nothing else (no queue, no S3, no API).
The service's audio seconds per wall second divided by this is its pipeline efficiency."""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any


def _worker(env: dict[str, str], paths: list[str], repeats: int, start_at: Any, results: Any) -> None:
    os.environ.update(env)
    from whisperq.config import Settings
    from whisperq.core.options import TranscribeOptions
    from whisperq.transcriber.audio import decode
    from whisperq.transcriber.engines import load_engine

    engine = load_engine(Settings.from_env())
    audios = [decode(p, os.path.basename(p)) for p in paths]
    engine.transcribe(audios[0], TranscribeOptions())  # warm-up, as a warm worker is
    start_at.wait()
    started = time.perf_counter()
    audio_s = 0.0
    for index in range(repeats):
        audio = audios[index % len(audios)]
        engine.transcribe(audio, TranscribeOptions())
        audio_s += audio.size / 16000
    results.put((audio_s, time.perf_counter() - started))


def bare_engine_throughput(env: dict[str, str], paths: list[str], processes: int, repeats: int) -> dict[str, Any]:
    """Audio seconds per wall second of `processes` engines transcribing `repeats` files each."""
    ctx = multiprocessing.get_context("spawn")
    start_at = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(env, paths, repeats, start_at, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    start_at.wait()
    started = time.perf_counter()
    outcomes = [results.get(timeout=3600) for _ in workers]
    wall_s = time.perf_counter() - started
    for worker in workers:
        worker.join()
    audio_s = sum(a for a, _ in outcomes)
    return {"processes": processes, "repeats": repeats, "audioSeconds": round(audio_s, 2), "wallS": round(wall_s, 3),
            "audioSecondsPerWallSecond": round(audio_s / wall_s, 3)}
