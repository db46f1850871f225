"""Why faster-whisper's batched pipeline lost accuracy here: the same long espeak file decoded with
faster-whisper directly in each suspect setting (previous-text conditioning, VAD segmentation, timestamp
tokens), and each transcript's errors split into substitutions, deletions and insertions.

    .venv/bin/python benchmarks/long_speech.py benchmarks/.audio --minutes 20.5 --pieces 1 --piece-minutes 6
    .venv/bin/python benchmarks/batched_why.py benchmarks/.audio/piece-00.wav --out docs/benchmarks/batched_why.json

tiny.en int8, beam 5, Whisper's temperature fallback, English; times are one run each on two threads
(for the speed, see benchmarks/batched.py, which runs each setting in a quiet process of its own).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.conftest import normalised  # noqa: E402

TEMPERATURES = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def errors(reference: list[str], hypothesis: list[str]) -> dict[str, int]:
    """Substitutions, deletions and insertions of the Levenshtein alignment of the words."""
    n, m = len(reference), len(hypothesis)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (reference[i - 1] != hypothesis[j - 1]))
    i, j, counts = n, m, {"sub": 0, "del": 0, "ins": 0}
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i][j] == d[i - 1][j - 1] + (reference[i - 1] != hypothesis[j - 1]):
            counts["sub"] += reference[i - 1] != hypothesis[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and d[i][j] == d[i - 1][j] + 1:
            counts["del"] += 1
            i -= 1
        else:
            counts["ins"] += 1
            j -= 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    from whisperq.transcriber.audio import decode
    from whisperq.transcriber.models import resolve_ct2_model

    samples = decode(str(args.audio), args.audio.name)
    reference = normalised(args.audio.with_suffix(".txt").read_text()).split()
    model = WhisperModel(str(resolve_ct2_model("tiny.en")), device="cpu", compute_type="int8", cpu_threads=2,
                         local_files_only=True)
    batched = BatchedInferencePipeline(model)
    common = {"language": "en", "beam_size": 5, "temperature": TEMPERATURES}
    settings = {
        "sequential (the default)": lambda: model.transcribe(samples, **common),
        "sequential, no previous-text conditioning": lambda: model.transcribe(
            samples, condition_on_previous_text=False, **common),
        "sequential, VAD segmentation": lambda: model.transcribe(samples, vad_filter=True, **common),
        "batched 4, timestamp tokens (whisperq until now)": lambda: batched.transcribe(
            samples, batch_size=4, without_timestamps=False, **common),
        "batched 4, no timestamp tokens (faster-whisper's default; whisperq now)": lambda: batched.transcribe(
            samples, batch_size=4, without_timestamps=True, **common),
    }
    rows = []
    for name, run in settings.items():
        started = time.perf_counter()
        segments = list(run()[0])
        took = time.perf_counter() - started
        hypothesis = normalised(" ".join(s.text for s in segments)).split()
        counts = errors(reference, hypothesis)
        row = {"setting": name, "wer": round(sum(counts.values()) / len(reference), 4), **counts,
               "referenceWords": len(reference), "words": len(hypothesis), "segments": len(segments),
               "seconds": round(took, 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.out:
        args.out.write_text(json.dumps({"audio": args.audio.name, "audioS": round(samples.size / 16000, 1),
                                        "results": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
