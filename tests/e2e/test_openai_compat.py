"""OpenAI's own Python SDK as the client of a running twin: the routes answer as OpenAI's API does,
through the real pipeline (audio to S3, its event, the queue, a worker, the job in DynamoDB)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import openai
import pytest
import requests

from tests.conftest import EXAMPLES, ROOT, normalised
from tests.wer import wer
from whisperq.client import Client

MEETING = EXAMPLES / "meeting.wav"
EXPECTED = (EXAMPLES / "meeting.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def ai(twin):
    _state_dir, running = twin
    return openai.OpenAI(api_key=running["apiKey"], base_url=running["apiUrl"] + "/v1", max_retries=0)


@pytest.fixture(scope="module")
def sdk(twin):
    return Client(twin[1]["apiUrl"], twin[1]["apiKey"])


def test_openai_sdk_when_transcribing_then_the_twin_answers_with_the_transcript(ai, sdk):
    with open(MEETING, "rb") as audio:
        raw = ai.audio.transcriptions.with_raw_response.create(model="tiny.en", file=audio)
    transcription = raw.parse()
    assert wer(normalised(EXPECTED), normalised(transcription.text)) <= 0.15, transcription.text
    assert transcription.usage.seconds == 7  # 6.3 s of audio, billed by the started second as OpenAI does
    job = sdk.get(raw.headers["x-whisperq-job-id"])  # an ordinary job, as any other
    assert job.status == "COMPLETED" and job.details["audioDurationS"] == pytest.approx(6.28, abs=0.05)


def test_openai_sdk_when_each_response_format_then_openai_shapes(ai):
    def create(**kwargs):
        with open(MEETING, "rb") as audio:
            return ai.audio.transcriptions.create(model="whisper-1", file=audio, **kwargs)

    text = create(response_format="text")
    assert isinstance(text, str) and "quarterly budget" in text.lower() and text.endswith("\n")
    srt = create(response_format="srt")
    assert re.match(r"1\n00:00:00,000 --> 00:00:0\d,\d{3}\n\S", srt) and "budget" in srt
    vtt = create(response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00.000 --> ") and "budget" in vtt
    verbose = create(response_format="verbose_json", language="en", temperature=0.0)
    assert (verbose.language, verbose.duration) == ("english", pytest.approx(6.28, abs=0.05))
    assert verbose.segments and verbose.segments[0].start == 0.0 and verbose.segments[-1].end <= 6.5
    assert verbose.words is None  # only segments unless words are asked for


def test_openai_sdk_when_word_timestamps_then_words_in_order_that_spell_the_text(ai):
    with open(MEETING, "rb") as audio:
        verbose = ai.audio.transcriptions.create(model="whisper-1", file=audio, response_format="verbose_json",
                                                 timestamp_granularities=["word", "segment"])
    words = verbose.words
    assert len(words) >= 12 and verbose.segments
    assert all(w.start <= w.end for w in words)
    assert all(a.start <= b.start for a, b in zip(words, words[1:], strict=False))
    assert normalised(" ".join(w.word for w in words)) == normalised(verbose.text)


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # translations, in openai 3.x
def test_openai_sdk_when_diarized_json_then_openai_segments_with_speakers_a_and_b(ai):
    with open(EXAMPLES / "dialogue.ogg", "rb") as audio:
        answer = ai.audio.transcriptions.create(model="gpt-4o-transcribe-diarize", file=audio,
                                                response_format="diarized_json", chunking_strategy="auto")
    assert answer.task == "transcribe" and answer.duration == pytest.approx(63.9, abs=0.5)
    assert {segment.speaker for segment in answer.segments} == {"A", "B"}
    assert answer.segments[0].speaker == "A" and answer.segments[0].type == "transcript.text.segment"
    assert [s.start for s in answer.segments] == sorted(s.start for s in answer.segments)
    assert normalised(" ".join(s.text for s in answer.segments)) == normalised(answer.text)


def test_openai_sdk_when_translating_with_an_english_only_model_then_400_and_no_job(ai, sdk):
    before = len(sdk.list_jobs(limit=100)["jobs"])
    with open(MEETING, "rb") as audio, pytest.raises(openai.BadRequestError) as refused:
        ai.audio.translations.create(model="whisper-1", file=audio)
    assert "English-only and cannot translate" in refused.value.message
    assert len(sdk.list_jobs(limit=100)["jobs"]) == before


def test_openai_sdk_when_key_wrong_then_permission_denied_and_clear(twin):
    bad = openai.OpenAI(api_key="sk-not-a-whisperq-key", base_url=twin[1]["apiUrl"] + "/v1", max_retries=0)
    with open(MEETING, "rb") as audio, pytest.raises(openai.PermissionDeniedError) as refused:
        bad.audio.transcriptions.create(model="whisper-1", file=audio)
    assert refused.value.status_code == 403 and "API key" in refused.value.message


def test_openai_sdk_when_file_is_not_audio_then_400_with_the_reason_and_the_job(ai, sdk, tmp_path):
    with pytest.raises(openai.BadRequestError) as unsupported:
        ai.audio.transcriptions.create(model="whisper-1", file=("notes.txt", b"hello"))
    assert unsupported.value.code == "invalid_file_format" and unsupported.value.param == "file"
    with pytest.raises(openai.BadRequestError) as failed:
        ai.audio.transcriptions.create(model="whisper-1", file=("broken.wav", b"RIFF" + os.urandom(4000)))
    job_id = failed.value.response.headers["x-whisperq-job-id"]
    assert failed.value.code == "transcription_failed" and job_id in failed.value.message
    job = sdk.get(job_id)
    assert job.status == "FAILED" and job.error in failed.value.message


def test_openai_sdk_when_over_size_then_413_pointing_to_post_jobs(ai, twin):
    with pytest.raises(openai.APIStatusError) as route_limit:  # over the route's 4 MiB
        ai.audio.transcriptions.create(model="whisper-1", file=("big.wav", b"\0" * (4 * 1024 * 1024 + 1)))
    assert route_limit.value.status_code == 413 and "POST /jobs" in route_limit.value.message
    # Over API Gateway's 10 MB payload limit: refused before the function, the same advice.
    response = requests.post(twin[1]["apiUrl"] + "/v1/audio/transcriptions", timeout=60,
                             headers={"Authorization": f"Bearer {twin[1]['apiKey']}"},
                             files={"file": ("huge.wav", b"\0" * (11 * 1024 * 1024))}, data={"model": "whisper-1"})
    assert response.status_code == 413 and "POST /jobs" in response.json()["error"]["message"]


def test_openai_sdk_when_models_listed_then_whisper_1_the_deployed_model_and_the_diarizing_name(ai):
    models = ai.models.list().data
    assert [model.id for model in models] == ["whisper-1", "tiny.en", "gpt-4o-transcribe-diarize"]
    assert all("diarized_json" in model.model_extra["response_formats"] for model in models)
    assert ai.models.retrieve("tiny.en").owned_by == "whisperq"
    with pytest.raises(openai.NotFoundError):
        ai.models.retrieve("gpt-4o-transcribe")


def test_openai_route_when_sent_again_with_an_idempotency_key_then_the_same_job(ai):
    def send():
        with open(MEETING, "rb") as audio:
            return ai.audio.transcriptions.with_raw_response.create(
                model="whisper-1", file=audio, extra_headers={"Idempotency-Key": "retry-me-7"})

    first, second = send(), send()
    assert first.headers["x-whisperq-job-id"] == second.headers["x-whisperq-job-id"]
    assert first.parse().text == second.parse().text


def test_readme_sdk_example_when_run_then_prints_the_transcript(twin):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    examples = re.findall(r"<!-- sdk-example -->\n```python\n(.*?)```", readme, re.S)
    assert len(examples) == 2, "the README shows the SDK and the OpenAI examples"
    env = {**os.environ, "WHISPERQ_API_URL": twin[1]["apiUrl"], "WHISPERQ_API_KEY": twin[1]["apiKey"]}
    for example in examples:
        result = subprocess.run([sys.executable, "-c", example], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert "quarterly budget" in result.stdout.lower(), result.stdout
