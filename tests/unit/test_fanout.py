"""Planning chunks at pauses, the chunk message, and merging chunks back without doubling words."""

from __future__ import annotations

import pytest

from whisperq.core.fanout import Chunk, ChunkMessage, merge, parse_chunk_message, plan_chunks, shift, trim_to_seams
from whisperq.core.transcript import Segment, Transcript, Word


def speech_with_pauses(duration_s: float, every_s: float, pause_s: float = 0.4) -> list[tuple[float, float]]:
    regions, start = [], 0.0
    while start < duration_s:
        regions.append((start, min(duration_s, start + every_s - pause_s)))
        start += every_s
    return regions


def test_plan_when_pauses_every_7s_then_cuts_fall_inside_pauses_near_the_target():
    speech = speech_with_pauses(300, 7.0)
    plan = plan_chunks(300, speech, chunk_s=60)
    assert plan[0].start_s == 0 and plan[-1].end_s == 300
    assert all(a.end_s == b.start_s for a, b in zip(plan, plan[1:], strict=False))
    for chunk in plan[:-1]:
        cut = chunk.end_s
        assert any(end <= cut <= start for (_, end), (start, _) in zip(speech, speech[1:], strict=False)), cut
        assert 45 <= chunk.duration_s <= 75 and not chunk.has_seam


def test_plan_when_a_long_pause_lies_a_little_further_then_it_is_preferred():
    # A short pause right at 60 s, a long one (2 s) at 62-64 s: the cut goes in the long one.
    speech = [(0.0, 59.8), (60.0, 62.0), (64.0, 120.0), (120.2, 200.0)]
    plan = plan_chunks(200, speech, chunk_s=60)
    assert plan[0].end_s == 63.0


def test_plan_when_no_pause_at_all_then_hard_cuts_overlap_around_a_seam():
    plan = plan_chunks(200, [(0.0, 200.0)], chunk_s=60, overlap_s=2.0)
    assert [c.seam_after_s for c in plan[:-1]] == [60.0, 120.0]
    assert plan[0].end_s == 61.0 and plan[1].start_s == 59.0 and plan[1].seam_before_s == 60.0
    assert plan[-1].end_s == 200 and plan[-1].seam_after_s is None


def test_plan_when_short_audio_then_one_chunk_and_last_chunk_never_a_sliver():
    assert len(plan_chunks(80, [(0, 80)], chunk_s=60)) == 1
    plan = plan_chunks(130, speech_with_pauses(130, 5.0), chunk_s=60)
    assert all(c.duration_s >= 30 for c in plan)


def test_chunk_message_when_round_tripped_then_equal_and_s3_events_are_not_chunks():
    message = ChunkMessage("job", 3, "chunks/job/00001.flac", Chunk(1, 59.0, 121.0, 60.0, 120.0))
    assert parse_chunk_message(message.to_body()) == message
    assert parse_chunk_message('{"Records": []}') is None
    with pytest.raises(ValueError):
        parse_chunk_message('{"kind": "whisperq.chunk", "jobId": "x"}')


def words_segment(ident: int, words: list[tuple[str, float, float]]) -> Segment:
    ws = tuple(Word(s, e, f" {w}", 0.9) for w, s, e in words)
    return Segment(ident, ws[0].start, ws[-1].end, "".join(w.word for w in ws), -0.2, 0.01, ws)


def transcript(*segments: Segment) -> Transcript:
    return Transcript(tuple(segments), "en", 0.99, 0.0, "faster-whisper", "tiny.en")


def test_merge_when_chunks_overlap_at_a_hard_cut_then_each_word_once():
    # The words around 60 s are heard by both chunks; the seam is at 60 s.
    left = Chunk(0, 0.0, 61.0, None, 60.0)
    right = Chunk(1, 59.0, 120.0, 60.0, None)
    first = transcript(words_segment(0, [("alpha", 57.0, 57.5), ("bravo", 58.5, 59.4), ("charlie", 59.6, 60.3),
                                         ("delta", 60.5, 60.9)]))
    second = transcript(words_segment(0, [("bravo", 59.0, 59.4), ("charlie", 59.7, 60.2), ("delta", 60.5, 60.9),
                                          ("echo", 61.5, 62.0)]))
    merged = merge([(right, second), (left, first)], 120.0, keep_words=False)
    assert merged.text.split() == ["alpha", "bravo", "charlie", "delta", "echo"]
    assert all(seg.words == () for seg in merged.segments) and merged.extra == {"chunks": 2}
    assert [s.id for s in merged.segments] == [0, 1]


def test_merge_when_cut_at_pauses_then_segments_simply_follow_and_words_kept_on_request():
    a, b = Chunk(0, 0.0, 30.0), Chunk(1, 30.0, 61.0)
    first = transcript(words_segment(0, [("one", 1.0, 1.5), ("two", 2.0, 2.5)]))
    second = shift(transcript(words_segment(0, [("three", 1.0, 1.5)])), 30.0)
    merged = merge([(a, first), (b, second)], 61.0, keep_words=True)
    assert merged.text == "one two three" and merged.segments[1].start == 31.0
    assert merged.segments[1].words[0].start == 31.0 and merged.duration_s == 61.0


def test_trim_when_segment_has_no_word_times_then_its_middle_decides():
    chunk = Chunk(1, 59.0, 120.0, 60.0, None)
    before = Segment(0, 58.0, 61.0, " gone", -0.1, 0.0)  # middle 59.5: the neighbour's
    after = Segment(1, 59.5, 62.0, " kept", -0.1, 0.0)  # middle 60.75: ours
    assert [s.text for s in trim_to_seams([before, after], chunk)] == [" kept"]


def test_merge_when_languages_differ_then_the_one_heard_longest_wins():
    a, b = Chunk(0, 0.0, 10.0), Chunk(1, 10.0, 100.0)
    short = Transcript((), "de", 0.5, 10.0)
    long = Transcript((), "fr", 0.8, 90.0)
    merged = merge([(a, short), (b, long)], 100.0, keep_words=False)
    assert (merged.language, merged.language_probability) == ("fr", 0.8)


# --- whole or cut -------------------------------------------------------------------------------
def _budget(**changes):
    from dataclasses import replace

    from whisperq.core.fanout import Budget

    # A 6-minute file, 18 s expected, a fresh 900 s invocation, fan-out from 60 s, no chunk under 30 s, one
    # other worker idle.
    base = Budget(duration_s=360, expected_s=18, time_left_s=900, function_timeout_s=900, fanout_min_duration_s=60,
                  chunk_s=30, can_split=True, idle_workers=1, max_concurrency=2)
    return replace(base, **changes)


@pytest.mark.parametrize(
    ("changes", "cut"),
    [
        ({}, "fan-out"),  # another worker would wait: cut
        ({"idle_workers": 0}, "whole"),  # every worker busy: cutting only adds cost
        ({"idle_workers": None}, "fan-out"),  # the queue unknown: cut
        ({"duration_s": 123, "expected_s": 5}, "fan-out"),  # a 2-minute file too, when a worker idles
        ({"duration_s": 50, "expected_s": 2}, "whole"),  # under fanout_min_duration_s
        ({"duration_s": 70, "chunk_s": 40, "fanout_min_duration_s": 60}, "whole"),  # not two chunks long
        ({"time_left_s": 30, "function_timeout_s": 30, "idle_workers": 0}, "fan-out"),  # may not finish: cut anyway
        ({"time_left_s": 50, "function_timeout_s": 50, "idle_workers": 0}, "whole"),  # fits twice with its overhead
        ({"can_split": False, "time_left_s": 20, "function_timeout_s": 900}, "wait"),  # a fresh invocation would do
        ({"can_split": False, "expected_s": 1000}, "too-long"),  # nothing can, and it cannot be cut
        ({"can_split": False, "expected_s": 897, "time_left_s": 10}, "too-long"),  # not even with overhead
        ({"fanout_min_duration_s": 0, "expected_s": 1000}, "too-long"),  # fan-out off: the knob to turn
        ({"fanout_min_duration_s": 0, "expected_s": 500}, "whole"),  # off, and it fits
        ({"duration_s": 50, "expected_s": 40, "time_left_s": 60, "function_timeout_s": 60}, "whole"),  # one chunk
    ],
)
def test_choose_cut_when_budget_is_as_given_then_whole_cut_wait_or_too_long(changes, cut):
    from whisperq.core.fanout import choose_cut

    assert choose_cut(_budget(**changes)).value == cut


@pytest.mark.parametrize(
    ("changes", "chunks"),
    [
        ({}, 2),  # one idle worker and this one: two halves, not twelve 30 s chunks
        ({"idle_workers": 4}, 5),
        ({"idle_workers": 100}, 12),  # never under chunk_s: 360 / 30
        ({"idle_workers": None, "max_concurrency": 6}, 6),  # the queue unknown: as many as may run
        ({"duration_s": 123, "idle_workers": 1}, 2),  # the 2-minute passage on an idle twin of two
        ({"duration_s": 123, "idle_workers": 5}, 4),
        # A file that would not fit an invocation (300 s expected, 180 s each): chunks small enough that the
        # longest a cut allows (1.5 times the target) fits twice over: 300 x 2 x 1.5 / (180 - 10) -> 6.
        ({"expected_s": 300, "function_timeout_s": 180, "time_left_s": 180, "idle_workers": 0}, 6),
    ],
)
def test_chunk_count_when_workers_idle_then_one_chunk_each_never_under_chunk_s(changes, chunks):
    from whisperq.core.fanout import chunk_count

    assert chunk_count(_budget(**changes)) == chunks


def test_plan_when_a_pause_lies_early_then_no_chunk_under_the_shortest_allowed():
    # Two halves of a minute asked for, the only pause at 16 s: cut there, the first chunk would be 16 s;
    # with min_chunk_s 30 the cut is hard, at 30 s, and both chunks keep their 30 s.
    speech = [(0.0, 15.5), (16.5, 60.0)]
    assert plan_chunks(60.0, speech, 30.0)[0].end_s == 16.0
    tight = plan_chunks(60.0, speech, 30.0, min_chunk_s=30.0)
    assert len(tight) == 2 and all(c.duration_s >= 30.0 for c in tight), tight
