"""Long speech with known text for the fan-out benchmarks: espeak-ng reads the GNU GPL v3 (Debian's
/usr/share/common-licenses/GPL-3, ~5,600 words of prose no clip of which repeats) at 160 words a
minute, and sox makes it 16 kHz mono.

    .venv/bin/python benchmarks/long_speech.py OUT_DIR [--minutes 20] [--pieces 20 --piece-minutes 6]

Writes OUT_DIR/long.wav (+ long.txt, the text read), and with --pieces, N files of --piece-minutes
each read from different places in the text (piece-NN.wav + .txt). Needs Debian's espeak-ng and sox
(apt-get install espeak-ng sox); nothing in make test uses it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path("/usr/share/common-licenses/GPL-3")
WORDS_PER_MINUTE = 160


def prose_words() -> list[str]:
    text = SOURCE.read_text(encoding="utf-8")
    text = re.sub(r"<[^>]*>", " ", text)  # URLs in angle brackets read badly
    return [word for word in text.split() if re.search(r"[A-Za-z]", word)]


def speak(words: list[str], out: Path, seconds: float | None = None) -> None:
    """espeak-ng reads `words` into `out` (16 kHz mono 16-bit WAV), cut to `seconds` when given."""
    text = " ".join(words)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(WORDS_PER_MINUTE), "-w", str(raw), text], check=True)
        trim = ["trim", "0", str(seconds)] if seconds else []
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out), *trim], check=True)
    out.with_suffix(".txt").write_text(text + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--pieces", type=int, default=0)
    parser.add_argument("--piece-minutes", type=float, default=6.0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    words = prose_words()
    # espeak-ng at -s 160 reads a little faster than 160 words a minute: take enough words, and keep the
    # text that was read (the file is not trimmed: its text stays exact).
    count = int(args.minutes * WORDS_PER_MINUTE * 1.0)
    speak(words[:count], args.out / "long.wav")
    piece_words = int(args.piece_minutes * WORDS_PER_MINUTE)
    for index in range(args.pieces):
        start = (index * len(words) // max(1, args.pieces)) % len(words)
        chosen = (words[start:] + words[:start])[:piece_words]
        speak(chosen, args.out / f"piece-{index:02d}.wav")
    for path in sorted(args.out.glob("*.wav")):
        info = subprocess.run(["soxi", "-D", str(path)], check=True, capture_output=True, text=True).stdout
        print(f"{path.name}: {float(info):.1f} s")


if __name__ == "__main__":
    main()
