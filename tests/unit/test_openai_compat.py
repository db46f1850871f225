"""OpenAI's audio contract in whisperq's terms: the form checked, the answers shaped, the multipart
body parsed byte for byte, the key found where OpenAI's clients put it."""

from __future__ import annotations

import json
import random

import pytest

from whisperq.api_handler import authorizer
from whisperq.api_handler.multipart import parse_form
from whisperq.core.errors import InvalidRequest
from whisperq.core.openai_compat import OpenAIRequestError, parse_request, render
from whisperq.core.transcript import Segment, Transcript, Word

AUDIO = ("talk.wav", b"RIFF....WAVE")


def form(**fields):
    values = {name: value if isinstance(value, list) else [value] for name, value in fields.items()}
    return {"file": [AUDIO], "model": ["whisper-1"], **values}


def test_parse_when_defaults_then_json_segments_and_job_options():
    request = parse_request(form(), "transcribe", "tiny.en")
    assert (request.filename, request.audio, request.response_format) == ("talk.wav", AUDIO[1], "json")
    assert request.options == {"task": "transcribe"} and request.segments and not request.words


def test_parse_when_everything_set_then_options_as_post_jobs_takes_them():
    request = parse_request(form(model="base", language="FR", prompt="Zoë, Kubernetes", temperature="0.4",
                                 response_format="verbose_json", **{"timestamp_granularities[]": ["word"]}),
                            "transcribe", "base")
    assert request.options == {"task": "transcribe", "language": "fr", "initialPrompt": "Zoë, Kubernetes",
                               "temperature": 0.4, "wordTimestamps": True}
    assert request.words and not request.segments  # only words asked for
    # temperature 0 is OpenAI's default: Whisper's fallback schedule, as OpenAI documents it.
    assert "temperature" in parse_request(form(temperature="0"), "transcribe", "tiny.en").options
    assert parse_request(form(temperature="0"), "transcribe", "tiny.en").options["temperature"] is None


@pytest.mark.parametrize(("fields", "param", "fragment"), [
    ({"model": ["whisper-2"]}, "model", "does not exist here"),
    ({"model": []}, "model", "provide a model"),
    ({"file": []}, "file", "needs a `file` part"),
    ({"file": ["not a file"]}, "file", "needs a `file` part"),
    ({"file": [("a.wav", b"")]}, "file", "empty"),
    ({"response_format": ["xml"]}, "response_format", "must be one of"),
    ({"timestamp_granularities[]": ["word"]}, "timestamp_granularities", "verbose_json"),
    ({"timestamp_granularities[]": ["char"], "response_format": ["verbose_json"]}, "timestamp_granularities",
     "word and/or segment"),
    ({"language": ["xx"]}, "language", "ISO-639-1"),
    ({"temperature": ["hot"]}, "temperature", "from 0 to 1"),
    ({"temperature": ["1.5"]}, "temperature", "from 0 to 1"),
    ({"stream": ["true"]}, "stream", "not supported"),
    ({"voice": ["alloy"]}, "voice", "unknown field"),
    ({"model": ["whisper-1", "whisper-1"]}, "model", "sent 2 times"),
])
def test_parse_when_a_field_is_wrong_then_400_naming_the_param(fields, param, fragment):
    with pytest.raises(OpenAIRequestError) as refused:
        parse_request({**form(), **fields}, "transcribe", "tiny.en")
    assert refused.value.param == param and fragment in refused.value.message
    assert refused.value.status_code == 400


def test_parse_when_translation_then_no_language_field():
    with pytest.raises(OpenAIRequestError, match="unknown field"):
        parse_request(form(language="en"), "translate", "base")
    assert parse_request(form(), "translate", "base").options == {"task": "translate"}


TRANSCRIPT = Transcript(
    segments=(Segment(0, 0.0, 1.5, " Bonjour à tous.", -0.2, 0.01, (Word(0.0, 0.6, " Bonjour", 0.9),
                                                                     Word(0.6, 1.5, " à tous.", 0.8))),
              Segment(1, 1.5, 3.25, " Merci.", -0.3, 0.02)),
    language="fr", language_probability=0.97, duration_s=3.25)


def test_render_when_each_format_then_openai_shapes():
    def answer(fmt, **extra):
        return render(parse_request(form(response_format=fmt, **extra), "transcribe", "base"), TRANSCRIPT)

    kind, body = answer("json")
    assert kind == "application/json"
    assert json.loads(body) == {"text": "Bonjour à tous. Merci.", "usage": {"type": "duration", "seconds": 4}}
    assert answer("text") == ("text/plain; charset=utf-8", "Bonjour à tous. Merci.\n")
    assert answer("srt")[1].startswith("1\n00:00:00,000 --> 00:00:01,500\nBonjour à tous.\n")
    assert answer("vtt")[1].startswith("WEBVTT\n\n00:00.000 --> 00:01.500\nBonjour à tous.")
    verbose = json.loads(answer("verbose_json", **{"timestamp_granularities[]": ["word", "segment"]})[1])
    assert (verbose["task"], verbose["language"], verbose["duration"]) == ("transcribe", "french", 3.25)
    assert [(s["id"], s["start"], s["end"], s["text"]) for s in verbose["segments"]] == [
        (0, 0.0, 1.5, " Bonjour à tous."), (1, 1.5, 3.25, " Merci.")]
    assert verbose["words"] == [{"word": "Bonjour", "start": 0.0, "end": 0.6},
                                {"word": "à tous.", "start": 0.6, "end": 1.5}]
    translated = json.loads(render(parse_request(form(response_format="verbose_json"), "translate", "base"),
                                   TRANSCRIPT)[1])
    assert (translated["task"], translated["language"]) == ("translate", "english") and "words" not in translated


def test_multipart_when_binary_audio_then_bytes_come_back_exactly():
    chooser = random.Random(7)
    audio = bytes(chooser.getrandbits(8) for _ in range(40_000)) + b"\r\n--\r\n\r"
    boundary = "----whisperq7"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="timestamp_granularities[]"\r\n\r\nword\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="timestamp_granularities[]"\r\n\r\nsegment\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="réunion.wav"\r\n'
            f'Content-Type: audio/wav\r\n\r\n').encode() + audio + f"\r\n--{boundary}--\r\n".encode()
    fields = parse_form(f"multipart/form-data; boundary={boundary}", body)
    assert fields["model"] == ["whisper-1"] and fields["timestamp_granularities[]"] == ["word", "segment"]
    assert fields["file"] == [("réunion.wav", audio)]


@pytest.mark.parametrize(("content_type", "fragment"), [
    (None, "multipart/form-data"), ("application/json", "multipart/form-data"),
    ("multipart/form-data", "no boundary")])
def test_multipart_when_not_a_form_then_clear_400(content_type, fragment):
    with pytest.raises(InvalidRequest, match=fragment):
        parse_form(content_type, b"{}")


def test_authorizer_when_bearer_or_header_then_the_key_goes_to_the_usage_plan():
    assert authorizer.api_key_of({"Authorization": "Bearer sk-abc "}) == "sk-abc"
    assert authorizer.api_key_of({"X-API-Key": "k1", "authorization": "Bearer k2"}) == "k1"
    assert authorizer.api_key_of({"authorization": "Basic dXNlcg=="}) is None
    assert authorizer.api_key_of({}) is None
    allowed = authorizer.handler({"headers": {"authorization": "Bearer k2"}, "methodArn": "arn:m"}, None)
    assert allowed["usageIdentifierKey"] == "k2"
    assert allowed["policyDocument"]["Statement"][0] == {"Action": "execute-api:Invoke", "Effect": "Allow",
                                                         "Resource": "arn:m"}
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer.handler({"headers": {}, "methodArn": "arn:m"}, None)


@pytest.mark.parametrize("body", [b"", b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n",
                                  b"--b\r\nno blank line\r\n--b--\r\n"])
def test_multipart_when_cut_short_or_malformed_then_400_not_a_crash(body):
    with pytest.raises(InvalidRequest, match="could not be parsed"):
        parse_form("multipart/form-data; boundary=b", body)
