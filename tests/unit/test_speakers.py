"""Speakers on a transcript (core.speakers), the speaker options, the writers with speakers, and the
clustering on vectors of known voices (transcriber.diarizers.clustering)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from whisperq.core.errors import InvalidRequest
from whisperq.core.options import TranscribeOptions
from whisperq.core.speakers import SpeakerHints, SpeakerTurn, assign, totals
from whisperq.core.transcript import Segment, Speaker, Transcript, Word
from whisperq.core.writers import WRITERS
from whisperq.transcriber.diarizers import SpeechEmbeddings
from whisperq.transcriber.diarizers.clustering import cluster

TURNS = [SpeakerTurn(0.0, 2.0, "SPEAKER_00"), SpeakerTurn(2.2, 5.0, "SPEAKER_01"), SpeakerTurn(5.5, 7.0, "SPEAKER_00")]


def words(*spec: tuple[str, float, float]) -> tuple[Word, ...]:
    return tuple(Word(start, end, text, 0.9) for text, start, end in spec)


def transcript(*segments: Segment) -> Transcript:
    return Transcript(segments, "en", 1.0, 7.0, "faster-whisper", "tiny.en")


def test_assign_when_segment_inside_one_turn_then_it_and_its_words_get_that_speaker():
    given = transcript(Segment(0, 0.1, 1.9, " Good morning.", -0.1, 0.0, words((" Good", 0.1, 0.6),
                                                                                (" morning.", 0.7, 1.9))))
    out = assign(given, TURNS)
    assert [(s.text, s.speaker) for s in out.segments] == [(" Good morning.", "SPEAKER_00")]
    assert [w.speaker for w in out.segments[0].words] == ["SPEAKER_00", "SPEAKER_00"]
    assert out.speakers == (Speaker("SPEAKER_00", 3.5),)  # only the voices its segments heard


def test_assign_when_segment_spans_a_change_of_speaker_then_split_at_the_word_where_it_changes():
    given = transcript(Segment(0, 1.0, 4.5, " Right. So the budget", -0.1, 0.0, words(
        (" Right.", 1.0, 1.8), (" So", 2.3, 2.6), (" the", 2.6, 2.8), (" budget", 2.9, 4.5))))
    out = assign(given, TURNS)
    assert [(s.id, s.start, s.end, s.text, s.speaker) for s in out.segments] == [
        (0, 1.0, 1.8, " Right.", "SPEAKER_00"), (1, 2.3, 4.5, " So the budget", "SPEAKER_01")]
    assert [w.speaker for w in out.segments[1].words] == ["SPEAKER_01"] * 3
    assert out.speakers == (Speaker("SPEAKER_00", 3.5), Speaker("SPEAKER_01", 2.8))


def test_assign_when_no_word_timestamps_then_words_share_the_span_and_the_segment_still_splits():
    given = transcript(Segment(0, 0.0, 4.0, " one two three four", -0.1, 0.0))
    out = assign(given, TURNS)
    assert [s.speaker for s in out.segments] == ["SPEAKER_00", "SPEAKER_01"]
    assert " ".join(s.text.strip() for s in out.segments) == "one two three four"
    assert out.segments[0].end <= out.segments[1].start


def test_assign_when_word_falls_in_a_pause_then_nearest_turn_within_a_second():
    given = transcript(Segment(0, 5.05, 5.3, " yes", -0.1, 0.0, words((" yes", 5.05, 5.3))))
    assert assign(given, TURNS).segments[0].speaker in ("SPEAKER_01", "SPEAKER_00")
    far = transcript(Segment(0, 20.0, 21.0, " hello", -0.1, 0.0, words((" hello", 20.0, 21.0))))
    assert assign(far, TURNS).segments[0].speaker is None


def test_assign_when_no_turns_then_no_speakers_and_text_unchanged():
    given = transcript(Segment(0, 0.0, 1.0, " hi", -0.1, 0.0))
    out = assign(given, [])
    assert out.speakers == () and out.segments[0].speaker is None and out.text == "hi"


def test_assign_when_clusters_named_arbitrarily_then_numbered_by_the_words_and_unheard_voices_dropped():
    turns = [SpeakerTurn(0.0, 0.5, "c"), SpeakerTurn(1.0, 2.0, "z"), SpeakerTurn(3.0, 4.0, "b"),
             SpeakerTurn(5.0, 6.0, "z")]
    given = transcript(Segment(0, 1.0, 6.0, " one two", -0.1, 0.0, words((" one", 1.1, 1.9), (" two", 3.1, 3.9))))
    out = assign(given, turns)  # "c" (a blip before any word) was heard in no word
    assert [(s.text, s.speaker) for s in out.segments] == [(" one", "SPEAKER_00"), (" two", "SPEAKER_01")]
    assert [w.speaker for s in out.segments for w in s.words] == ["SPEAKER_00", "SPEAKER_01"]
    assert out.speakers == (Speaker("SPEAKER_00", 2.0), Speaker("SPEAKER_01", 1.0))
    assert totals([SpeakerTurn(0.0, 1.0, "a"), SpeakerTurn(2.0, 2.5, "a")]) == (Speaker("a", 1.5),)


def test_transcript_when_diarized_then_round_trips_and_undiarized_json_has_no_speaker_keys():
    diarized = assign(transcript(Segment(0, 2.3, 4.5, " So", -0.1, 0.0, words((" So", 2.3, 4.5)))), TURNS)
    assert Transcript.from_dict(json.loads(json.dumps(diarized.to_dict()))) == diarized
    plain = transcript(Segment(0, 0.0, 1.0, " hi", -0.1, 0.0, words((" hi", 0.0, 1.0)))).to_dict()
    assert "speakers" not in plain and "speaker" not in plain["segments"][0]
    assert "speaker" not in plain["segments"][0]["words"][0]


DIARIZED = assign(transcript(
    Segment(0, 0.0, 1.9, " Good morning.", -0.1, 0.0),
    Segment(1, 2.3, 4.5, " Let's start.", -0.1, 0.0)), TURNS)


@pytest.mark.parametrize(("fmt", "expected"), [
    ("txt", "[SPEAKER_00] Good morning.\n[SPEAKER_01] Let's start.\n"),
    ("srt", "1\n00:00:00,000 --> 00:00:01,900\n[SPEAKER_00] Good morning.\n\n"
            "2\n00:00:02,300 --> 00:00:04,500\n[SPEAKER_01] Let's start.\n"),
    ("vtt", "WEBVTT\n\n00:00.000 --> 00:01.900\n<v SPEAKER_00>Good morning.\n\n"
            "00:02.300 --> 00:04.500\n<v SPEAKER_01>Let's start.\n"),
    ("tsv", "start\tend\tspeaker\ttext\n0\t1900\tSPEAKER_00\tGood morning.\n2300\t4500\tSPEAKER_01\tLet's start.\n"),
])
def test_writers_when_diarized_then_each_line_says_who_speaks(fmt, expected):
    assert WRITERS[fmt](DIARIZED) == expected


def test_json_writer_when_diarized_then_speaker_on_segments_and_a_speakers_list():
    data = json.loads(WRITERS["json"](DIARIZED))
    assert [s["speaker"] for s in data["segments"]] == ["SPEAKER_00", "SPEAKER_01"]
    assert data["speakers"] == [{"label": "SPEAKER_00", "seconds": 3.5}, {"label": "SPEAKER_01", "seconds": 2.8}]


@pytest.mark.parametrize(("options", "message"), [
    ({"numSpeakers": 2}, "only apply with diarize: true"),
    ({"diarize": True, "numSpeakers": 0}, "options.numSpeakers must be an integer from 1 to 20"),
    ({"diarize": True, "maxSpeakers": 21}, "options.maxSpeakers must be an integer from 1 to 20"),
    ({"diarize": True, "numSpeakers": 2, "maxSpeakers": 3}, "not both"),
    ({"diarize": True, "minSpeakers": 4, "maxSpeakers": 2}, "minSpeakers must not be more than maxSpeakers"),
    ({"diarize": "yes please"}, "options.diarize must be true or false"),
])
def test_options_when_speaker_hints_are_wrong_then_invalid_request_says_the_range(options, message):
    with pytest.raises(InvalidRequest, match=message):
        TranscribeOptions.from_api(options)


def test_options_when_diarize_then_word_timestamps_and_hints():
    options = TranscribeOptions.from_api({"diarize": True, "minSpeakers": 2, "maxSpeakers": 4})
    assert options.word_timestamps and options.speaker_hints == SpeakerHints(None, 2, 4)
    assert options.to_api()["diarize"] is True


def voices(seconds_each: list[float], seed: int = 0, spread: float = 0.4) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Pieces of 2 s from voices as the benchmark's are (centres ~0.5 apart in cosine distance, each piece
    ~0.07 from its centre), interleaved as a conversation."""
    rng = np.random.default_rng(seed)

    def unit(rows: np.ndarray) -> np.ndarray:
        return rows / np.linalg.norm(rows, axis=-1, keepdims=True)

    shared = unit(rng.normal(size=256))
    centres = unit(shared + unit(rng.normal(size=(len(seconds_each), 256))))
    truth = [v for v, seconds in enumerate(seconds_each) for _ in range(int(seconds // 2))]
    rng.shuffle(truth)
    vectors = unit(centres[truth] + spread * unit(rng.normal(size=(len(truth), 256))))
    return vectors.astype(np.float32), np.full(len(truth), 2.0), truth


def agree(labels: np.ndarray, truth: list[int]) -> bool:
    """One label per true voice and one voice per label."""
    pairs = set(zip(labels.tolist(), truth, strict=True))
    return len(pairs) == len(set(truth)) == len(set(labels.tolist()))


@pytest.mark.parametrize("count", [2, 3, 5])
def test_cluster_when_no_hint_then_finds_each_voice(count):
    vectors, durations, truth = voices([60.0] * count, seed=count)
    assert agree(cluster(vectors, durations, SpeakerHints()), truth)


def test_cluster_when_one_voice_then_one_speaker():
    vectors, durations, _ = voices([120.0], seed=1)
    assert set(cluster(vectors, durations, SpeakerHints()).tolist()) == {0}


def test_cluster_when_hinted_then_the_hint_wins():
    vectors, durations, _ = voices([60.0, 60.0, 60.0], seed=4)
    assert len(set(cluster(vectors, durations, SpeakerHints(count=2)).tolist())) == 2
    assert len(set(cluster(vectors, durations, SpeakerHints(most=2)).tolist())) == 2
    one, _, _ = voices([120.0], seed=5)
    assert len(set(cluster(one, np.full(len(one), 2.0), SpeakerHints(least=2)).tolist())) == 2


def test_cluster_when_a_voice_is_heard_for_a_second_then_it_joins_the_nearest():
    vectors, durations, truth = voices([60.0, 60.0, 2.0], seed=6)
    durations[[i for i, v in enumerate(truth) if v == 2]] = 1.0
    assert len(set(cluster(vectors, durations, SpeakerHints()).tolist())) == 2


def test_cluster_when_labels_come_back_then_numbered_by_first_appearance():
    vectors, durations, _ = voices([40.0, 40.0], seed=7)
    labels = cluster(vectors, durations, SpeakerHints())
    assert labels[0] == 0 and set(labels.tolist()) == {0, 1}


def test_speech_embeddings_when_stored_then_read_back_within_float16():
    vectors, _, _ = voices([10.0, 10.0])
    embeddings = SpeechEmbeddings(np.arange(len(vectors)) * 2.0, np.arange(len(vectors)) * 2.0 + 1.5, vectors)
    back = SpeechEmbeddings.from_dict(json.loads(json.dumps(embeddings.shifted(60.0).to_dict())))
    assert np.allclose(back.starts, embeddings.starts + 60.0) and np.allclose(back.vectors, vectors, atol=1e-3)
    joined = SpeechEmbeddings.joined([embeddings, back])
    assert len(joined) == 2 * len(embeddings) and joined.vectors.shape == (2 * len(vectors), 256)


def test_openai_diarized_json_when_rendered_then_segments_with_speakers_a_b_in_order_heard():
    from whisperq.core.openai_compat import diarized, parse_request, speaker_letter

    body = diarized(DIARIZED)
    assert body["task"] == "transcribe" and body["text"] == "Good morning. Let's start."
    assert [(s["id"], s["speaker"], s["type"]) for s in body["segments"]] == [
        ("seg_0", "A", "transcript.text.segment"), ("seg_1", "B", "transcript.text.segment")]
    order: dict[str, str] = {}
    assert [speaker_letter(f"SPEAKER_{i:02d}", order) for i in (0, 1, 0, *range(2, 28))][-2:] == ["AA", "AB"]
    # Segments nobody was heard in share one letter of their own; a voice keeps its letter.
    order = {}
    assert [speaker_letter(name, order) for name in (None, None, "SPEAKER_00", None)] == ["A", "A", "B", "A"]
    fields = {"file": [("a.wav", b"RIFF")], "model": ["gpt-4o-transcribe-diarize"],
              "response_format": ["diarized_json"]}
    assert parse_request(fields, "transcribe", "tiny.en").options["diarize"] is True


def test_cluster_when_a_piece_has_no_usable_embedding_then_it_takes_its_neighbours_voice():
    vectors, durations, truth = voices([40.0, 40.0], seed=8)
    vectors[3] = 0.0
    vectors[7] = np.nan
    labels = cluster(vectors, durations, SpeakerHints())
    assert labels[3] == labels[2] or labels[3] == labels[4]
    assert labels[7] in (labels[6], labels[8]) and len(set(labels.tolist())) == 2
    assert set(cluster(np.zeros((3, 256), np.float32), np.ones(3), SpeakerHints()).tolist()) == {0}


def test_cluster_when_at_least_more_than_eight_asked_then_that_many():
    vectors, durations, _ = voices([20.0] * 10, seed=9)
    assert len(set(cluster(vectors, durations, SpeakerHints(least=10)).tolist())) == 10
    few, few_durations, _ = voices([4.0], seed=10)  # two pieces
    assert len(set(cluster(few, few_durations, SpeakerHints(count=5)).tolist())) <= 2
