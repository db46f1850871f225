import pytest

from whisperq.core.errors import InvalidRequest
from whisperq.core.options import TranscribeOptions


def test_from_api_when_absent_then_defaults():
    options = TranscribeOptions.from_api(None)
    assert options == TranscribeOptions() and options.beam_size == 5 and options.language is None


def test_from_api_when_all_valid_then_kept_and_round_trip():
    raw = {"language": "EN", "task": "transcribe", "initialPrompt": "Budget, hiring.", "wordTimestamps": True,
           "vadFilter": True, "beamSize": 1, "temperature": 0}
    options = TranscribeOptions.from_api(raw)
    assert options.language == "en" and options.word_timestamps and options.vad_filter
    assert options.beam_size == 1 and options.temperature == 0.0 and options.initial_prompt == "Budget, hiring."
    assert TranscribeOptions.from_api(options.to_api()) == options


def test_from_api_when_language_auto_then_detect():
    assert TranscribeOptions.from_api({"language": "auto"}).language is None


def test_from_api_when_multilingual_model_then_french_and_translate_accepted():
    options = TranscribeOptions.from_api({"language": "fr", "task": "translate"}, model="base")
    assert options.language == "fr" and options.task == "translate"


@pytest.mark.parametrize(
    ("raw", "model", "fragment"),
    [
        ("fast", "tiny.en", "JSON object"),
        ({"langauge": "en"}, "tiny.en", "unknown option"),
        ({"language": "klingon"}, "base", "not a Whisper language code"),
        ({"language": 7}, "base", "not a Whisper language code"),
        ({"language": "fr"}, "tiny.en", "English-only"),
        ({"task": "translate"}, "tiny.en", "cannot translate"),
        ({"task": "summarise"}, "base", "'transcribe' or 'translate'"),
        ({"initialPrompt": "x" * 1001}, "base", "at most 1000"),
        ({"initialPrompt": 3}, "base", "initialPrompt"),
        ({"wordTimestamps": "yes"}, "base", "true or false"),
        ({"vadFilter": 1}, "base", "true or false"),
        ({"beamSize": 0}, "base", "1 to 10"),
        ({"beamSize": 11}, "base", "1 to 10"),
        ({"beamSize": True}, "base", "1 to 10"),
        ({"beamSize": 2.5}, "base", "1 to 10"),
        ({"temperature": 1.5}, "base", "0.0001 to 1"),
        ({"temperature": "hot"}, "base", "0.0001 to 1"),
        ({"temperature": float("nan")}, "base", "0.0001 to 1"),
    ],
)
def test_from_api_when_invalid_then_invalid_request_names_it(raw, model, fragment):
    with pytest.raises(InvalidRequest) as caught:
        TranscribeOptions.from_api(raw, model=model)
    assert fragment in str(caught.value)


def test_language_on_an_english_only_model_when_refused_then_names_the_model_that_would_do_it():
    with pytest.raises(InvalidRequest) as refused:
        TranscribeOptions.from_api({"language": "fr"}, "tiny.en")
    assert "WHISPERQ_MODEL=base" in refused.value.message and "'fr'" in refused.value.message
