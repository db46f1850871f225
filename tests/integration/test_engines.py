"""Both real engines on the same bundled tiny.en weights, offline, on the same speech."""

from __future__ import annotations

import pytest

from tests.conftest import EXAMPLES, MEETING_PHRASES, normalised
from whisperq.config import Settings
from whisperq.core.errors import ConfigError
from whisperq.core.options import TranscribeOptions
from whisperq.transcriber.audio import decode
from whisperq.transcriber.engines import load_engine
from whisperq.transcriber.engines.convert import openai_checkpoint
from whisperq.transcriber.engines.faster import FasterWhisperEngine
from whisperq.transcriber.engines.openai import OpenAIWhisperEngine
from whisperq.transcriber.models import resolve_ct2_model


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def engines(cache):
    return FasterWhisperEngine("tiny.en", "int8", 1), OpenAIWhisperEngine("tiny.en", 1, cache)


def words(text: str) -> list[str]:
    return normalised(text).split()


@pytest.mark.parametrize("sample", ["meeting.wav", "standup.wav"])
def test_engines_when_same_speech_then_same_words(engines, sample):
    audio = decode(str(EXAMPLES / sample), sample)
    faster, openai = (engine.transcribe(audio, TranscribeOptions()) for engine in engines)
    assert words(faster.text) == words(openai.text)
    assert faster.engine == "faster-whisper" and openai.engine == "openai-whisper"


def test_engines_when_word_timestamps_then_words_agree_within_a_tenth_of_a_second(engines):
    audio = decode(str(EXAMPLES / "meeting.wav"), "meeting.wav")
    options = TranscribeOptions(word_timestamps=True)
    faster, openai = (engine.transcribe(audio, options) for engine in engines)
    faster_words = [w for s in faster.segments for w in s.words]
    openai_words = [w for s in openai.segments for w in s.words]
    assert [w.word for w in faster_words] == [w.word for w in openai_words]
    assert len(faster_words) >= 12
    for a, b in zip(faster_words, openai_words, strict=True):
        assert abs(a.start - b.start) <= 0.1 and abs(a.end - b.end) <= 0.1
        assert 0.0 <= a.probability <= 1.0 and type(a.start) is float


@pytest.mark.parametrize("engine_index", [0, 1])
def test_engines_when_vad_filter_then_speech_still_transcribed(engines, engine_index):
    audio = decode(str(EXAMPLES / "meeting.wav"), "meeting.wav")
    text = normalised(engines[engine_index].transcribe(audio, TranscribeOptions(vad_filter=True)).text)
    assert all(phrase in text for phrase in MEETING_PHRASES)


def test_openai_checkpoint_when_converted_twice_then_cached_once(cache):
    first, heads = openai_checkpoint(resolve_ct2_model("tiny.en"), cache)
    mtime = first.stat().st_mtime_ns
    second, _ = openai_checkpoint(resolve_ct2_model("tiny.en"), cache)
    assert first == second and second.stat().st_mtime_ns == mtime
    assert heads and all(len(pair) == 2 for pair in heads)


@pytest.mark.parametrize("engine", ["faster-whisper", "openai-whisper"])
def test_load_engine_when_model_not_available_offline_then_config_error_at_start(engine, cache):
    settings = Settings.from_env({}, engine=engine, model="large-v3", cache_dir=str(cache))
    with pytest.raises(ConfigError) as caught:
        load_engine(settings)
    reason = str(caught.value)
    assert "not in this deployment" in reason and "tiny.en" in reason  # what it has
    assert "whisperq models fetch large-v3" in reason  # and how to add the one asked for


def test_load_engine_when_model_is_a_directory_without_weights_then_config_error(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_engine(Settings.from_env({}, model=str(tmp_path)))
    assert "no model.bin" in str(caught.value)


def test_batched_when_the_passage_is_decoded_then_as_accurate_as_sequential_and_one_segment_a_sentence(engines):
    """Batched windows decoded without timestamp tokens (with them, the words after a window's last
    timestamp were dropped) and cut into sentences: the passage's WER within a point of sequential
    decoding's, every segment a sentence inside the audio; greedy decoding stays sequential."""
    from tests.wer import wer

    audio = decode(str(EXAMPLES / "passage.ogg"), "passage.ogg")
    truth = words((EXAMPLES / "passage.txt").read_text())
    sequential = engines[0].transcribe(audio, TranscribeOptions())
    batched_engine = FasterWhisperEngine("tiny.en", "int8", 1, 4)
    batched = batched_engine.transcribe(audio, TranscribeOptions())
    assert wer(truth, words(batched.text)) <= wer(truth, words(sequential.text)) + 0.01
    assert len(batched.segments) >= 8 and all(s.text.strip()[-1] in ".?!" for s in batched.segments[:-1])
    assert all(0 <= s.start < s.end <= batched.duration_s + 0.5 for s in batched.segments)
    assert [s.id for s in batched.segments] == list(range(len(batched.segments)))
    timed = batched_engine.transcribe(audio, TranscribeOptions(word_timestamps=True))
    assert all(s.words for s in timed.segments)
    assert words(" ".join(w.word for s in timed.segments for w in s.words)) == words(timed.text)
    assert all(a.end <= b.start + 0.01 for a, b in zip(timed.segments, timed.segments[1:], strict=False))
    assert batched_engine.batched_for(123, TranscribeOptions()) and not batched_engine.batched_for(
        123, TranscribeOptions(beam_size=1)) and not batched_engine.batched_for(50, TranscribeOptions())
