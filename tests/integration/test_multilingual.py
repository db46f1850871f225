"""Whisper base (multilingual, bundled in two packages joined once into the cache) through the
transcriber on moto: the language detected with its probability, a language set by hand, and
translation into English, on French, German and Spanish speech the project generated (espeak-ng)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import requests
from aws_lambda_powertools import Logger

from tests.conftest import EXAMPLES, normalised
from whisperq.api_handler.service import JobService
from whisperq.aws.provision import provision
from whisperq.core.errors import InvalidRequest
from whisperq.core.jobs import JobStatus
from whisperq.local.esm import lambda_record
from whisperq.local.lambda_context import LocalLambdaContext
from whisperq.transcriber import handler as function
from whisperq.transcriber.engines.faster import FasterWhisperEngine
from whisperq.transcriber.models import resolve_ct2_model


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def base_engine(model_cache):
    return FasterWhisperEngine("base", "int8", 1, 0, model_cache)


@pytest.fixture
def base(stack, base_engine):
    """A deployment whose model is base: its API accepts languages and translation."""
    settings = replace(stack.settings, model="base")
    provision(stack.clients, settings)  # its uploads (audio/base/) notify the deployment's queue
    function.reset(function.build_runtime(settings, stack.clients, base_engine, Logger(service="t"),
                                          sleep=lambda s: None))
    service = JobService(settings, stack.jobs, stack.blobs)

    def transcribe(name: str, options: dict) -> tuple[dict, str, dict]:
        created = service.create_upload({"filename": f"{name}.ogg", "contentType": "audio/ogg", "options": options,
                                         "contentLength": (EXAMPLES / f"{name}.ogg").stat().st_size})
        requests.put(created["uploadUrl"], data=(EXAMPLES / f"{name}.ogg").read_bytes(),
                     headers=created["uploadHeaders"], timeout=30).raise_for_status()
        records = [lambda_record(m, stack.resources.queue_arn, "us-east-1") for m in stack.receive_all(1)]
        assert function.handler({"Records": records}, LocalLambdaContext("t")) == {"batchItemFailures": []}
        job_id = created["jobId"]
        view = service.status(job_id)
        assert view["status"] == JobStatus.COMPLETED.value, view
        data = json.loads(stack.blobs.get_text(f"transcripts/{job_id}/{job_id}.json"))
        return view, normalised(data["text"]), data

    yield transcribe
    function.reset()


def test_base_when_resolved_twice_then_joined_once_with_the_size_of_its_parts(base_engine, model_cache):
    path = resolve_ct2_model("base", model_cache)
    model = path / "model.bin"
    stamp = model.stat().st_mtime_ns
    assert resolve_ct2_model("base", model_cache) == path and model.stat().st_mtime_ns == stamp
    assert model.stat().st_size > 140_000_000 and (path / "tokenizer.json").is_file()


def test_base_when_french_speech_then_language_detected_with_probability_on_job_and_json(base):
    view, text, data = base("french", {})
    assert view["details"]["language"] == "fr" and 0.3 < view["details"]["languageProbability"] <= 1
    assert data["language"] == "fr"
    for phrase in ("bonjour", "budget", "recrutement"):
        assert phrase in text, text


def test_base_when_language_set_by_hand_then_used_and_recorded(base):
    view, text, data = base("german", {"language": "de"})
    assert view["details"]["language"] == "de" and data["language"] == "de"
    assert "guten morgen" in text and "jahr" in text, text


def test_base_when_translate_then_english_text_of_spanish_speech(base):
    view, text, _ = base("spanish", {"task": "translate"})
    assert view["details"]["language"] == "es" and view["options"]["task"] == "translate"
    assert "good" in text and "plan" in text and "presupuesto" not in text, text


def test_api_when_model_is_english_only_then_other_languages_refused(stack):
    with pytest.raises(InvalidRequest):
        stack.service.create_upload({"filename": "f.ogg", "contentType": "audio/ogg", "options": {"language": "fr"},
                                     "contentLength": 1000})


def test_openai_whisper_when_base_then_converted_from_the_joined_weights_and_same_language(model_cache):
    from whisperq.core.options import TranscribeOptions
    from whisperq.transcriber.audio import decode
    from whisperq.transcriber.engines.openai import OpenAIWhisperEngine

    engine = OpenAIWhisperEngine("base", 1, model_cache)
    transcript = engine.transcribe(decode(str(EXAMPLES / "german.ogg"), "german.ogg"),
                                   TranscribeOptions.from_api({"beamSize": 1}, "base"))
    assert transcript.language == "de" and transcript.language_probability > 0.9
    assert "guten morgen" in normalised(transcript.text) and "jahr" in normalised(transcript.text)
