import json

from whisperq.core.transcript import Segment, Transcript, Word
from whisperq.core.writers import CONTENT_TYPES, WRITERS, render_all

TRANSCRIPT = Transcript(
    segments=(
        Segment(0, 0.0, 2.5, " Good morning everyone.", -0.2, 0.01, (Word(0.0, 0.4, " Good", 0.9),)),
        Segment(1, 2.5, 3661.25, " Let's review the budget.", -0.3, 0.02),
        Segment(2, 3661.25, 3662.0, "   ", -1.0, 0.9),  # blank segments are dropped from text outputs
    ),
    language="en",
    language_probability=1.0,
    duration_s=3662.0,
    engine="faster-whisper",
    model="tiny.en",
)


def test_registry_has_every_format_with_a_content_type():
    assert set(WRITERS) == {"txt", "json", "srt", "vtt", "tsv"}
    assert set(CONTENT_TYPES) == set(WRITERS)


def test_txt_when_rendered_then_one_line_per_spoken_segment():
    assert render_all(TRANSCRIPT)["txt"] == "Good morning everyone.\nLet's review the budget.\n"


def test_srt_when_rendered_then_numbered_cues_with_comma_millis_and_hours():
    srt = WRITERS["srt"](TRANSCRIPT)
    assert srt.startswith("1\n00:00:00,000 --> 00:00:02,500\nGood morning everyone.\n")
    assert "2\n00:00:02,500 --> 01:01:01,250\nLet's review the budget.\n" in srt
    assert "3\n" not in srt


def test_vtt_when_rendered_then_header_and_dot_millis():
    vtt = WRITERS["vtt"](TRANSCRIPT)
    assert vtt.startswith("WEBVTT\n\n00:00.000 --> 00:02.500\nGood morning everyone.\n")
    assert "00:02.500 --> 01:01:01.250" in vtt


def test_tsv_when_rendered_then_integer_milliseconds():
    rows = WRITERS["tsv"](TRANSCRIPT).splitlines()
    assert rows[0] == "start\tend\ttext"
    assert rows[2] == "2500\t3661250\tLet's review the budget."


def test_json_when_rendered_then_segments_words_and_text():
    data = json.loads(WRITERS["json"](TRANSCRIPT))
    assert data["text"] == "Good morning everyone. Let's review the budget."
    assert data["language"] == "en" and data["duration_s"] == 3662.0
    assert data["segments"][0]["words"][0] == {"start": 0.0, "end": 0.4, "word": " Good", "probability": 0.9}
    assert data["segments"][1]["avg_logprob"] == -0.3


LONG = (
    "We will now review every item of the quarterly budget, line by line, and then decide together "
    "which of the open positions in the hiring plan we can fill before the end of the year."
)


def test_subtitles_when_segment_is_long_then_cues_of_two_lines_of_42_at_most():
    from whisperq.core.writers import subtitle_cues

    cues = subtitle_cues((Segment(0, 10.0, 30.0, " " + LONG, -0.2, 0.0),))
    assert len(cues) > 1
    for start, end, text, _ in cues:
        lines = text.split("\n")
        assert len(lines) <= 2 and all(len(line) <= 42 for line in lines)
        assert 10.0 <= start < end <= 30.0 + 1e-9
    assert " ".join(text.replace("\n", " ") for _, _, text, _ in cues) == LONG
    assert [c[0] for c in cues] == sorted(c[0] for c in cues)


def test_subtitles_when_word_timestamps_then_cues_start_and_end_on_words():
    from whisperq.core.writers import subtitle_cues

    words = tuple(Word(1.0 + i, 1.5 + i, " " + w, 0.9) for i, w in enumerate(LONG.split()))
    cues = subtitle_cues((Segment(0, 1.0, 1.5 + len(words), " " + LONG, -0.2, 0.0, words),))
    starts = {w.start for w in words}
    ends = {w.end for w in words}
    assert all(start in starts and end in ends for start, end, _, _ in cues)


def test_srt_when_segment_is_long_then_wrapped_into_numbered_cues():
    srt = WRITERS["srt"](Transcript((Segment(0, 0.0, 20.0, LONG, -0.2, 0.0),), "en", 1.0, 20.0))
    assert "\n2\n" in srt and "-->" in srt
    body_lines = [line for line in srt.splitlines() if line and "-->" not in line and not line.isdigit()]
    assert all(len(line) <= 42 for line in body_lines)
