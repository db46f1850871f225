"""Model tiers (core/tiers.py): ids, queue names, the default first, an unknown model refused with the
list; the settings that name them; the facts GET /v1/models shows, held to the benchmark and the planner."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT
from whisperq.config import Settings
from whisperq.core import model_facts
from whisperq.core.errors import ConfigError, InvalidRequest
from whisperq.core.openai_compat import OpenAIRequestError, models, parse_request
from whisperq.core.tiers import Tier, Tiers, tier_id


@pytest.mark.parametrize(("model", "expected"), [("tiny.en", "tiny-en"), ("base", "base"),
                                                 ("Systran/faster-whisper-large-v3", "Systran-faster-whisper-large-v3"),
                                                 ("distil_v3+x", "distil_v3-x")])
def test_tier_id_when_model_named_then_fit_for_queue_names_and_prefixes(model, expected):
    assert tier_id(model) == expected


def test_tiers_when_built_then_default_first_keeps_the_queue_names_and_others_get_their_own():
    tiers = Tiers.of("tiny.en", ["base", "tiny.en", "large-v3-turbo"])
    assert tiers.models == ("tiny.en", "base", "large-v3-turbo")
    assert tiers.default == Tier("tiny.en", default=True)
    assert [t.queue_name("q") for t in tiers] == ["q", "q-base", "q-large-v3-turbo"]
    assert [t.dlq_name("q", "q-dlq") for t in tiers] == ["q-dlq", "q-base-dlq", "q-large-v3-turbo-dlq"]
    assert [t.audio_prefix for t in tiers] == ["audio/tiny-en/", "audio/base/", "audio/large-v3-turbo/"]
    assert tiers.for_model(None) is tiers.default and tiers.for_model("base").id == "base"
    assert tiers.by_id("base").model == "base" and tiers.by_id("nope") is None


def test_tiers_when_model_unknown_then_invalid_request_listing_the_deployments_models():
    with pytest.raises(InvalidRequest, match=r"'large-v3' is not served .*tiny\.en, base"):
        Tiers.of("tiny.en", ["base"]).for_model("large-v3")


def test_tiers_when_two_models_share_an_id_then_config_error():
    with pytest.raises(ConfigError, match="share a tier id"):
        Tiers.of("tiny.en", ["tiny-en"])


def test_settings_when_models_named_then_tiers_and_a_bad_list_refused_at_start():
    settings = Settings.from_env({"WHISPERQ_MODEL": "base", "WHISPERQ_MODELS": "tiny.en, base"})
    assert settings.tiers.models == ("base", "tiny.en")
    assert Settings.from_env({}).tiers.models == ("tiny.en",)
    with pytest.raises(ConfigError, match="WHISPERQ_MODELS"):
        Settings.from_env({"WHISPERQ_MODELS": "a.b,a-b"})


def test_openai_form_when_model_named_then_that_tier_and_whisper_1_the_default():
    form = {"file": [("a.wav", b"RIFF")]}
    assert parse_request({**form, "model": ["base"]}, "transcribe", ("tiny.en", "base")).model == "base"
    assert parse_request({**form, "model": ["whisper-1"]}, "transcribe", ("tiny.en", "base")).model is None
    with pytest.raises(OpenAIRequestError, match="'tiny.en', 'base'"):
        parse_request({**form, "model": ["large-v3"]}, "transcribe", ("tiny.en", "base"))


def test_openai_models_when_listed_then_each_model_with_languages_size_speed_and_aliases():
    listed = {m["id"]: m for m in models(("tiny.en", "base"), 0)["data"]}
    assert list(listed) == ["whisper-1", "tiny.en", "base", "gpt-4o-transcribe-diarize"]
    assert listed["whisper-1"]["aliasOf"] == "tiny.en" and listed["whisper-1"]["default"] is True
    assert listed["tiny.en"]["languages"] == ["en"] and listed["base"]["languages"] != ["en"]
    assert listed["base"]["realTime"] == 13.5 and listed["base"]["speedSource"].startswith("measured")
    assert "aliasOf" not in listed["base"] and listed["base"]["default"] is False


def test_model_facts_when_compared_then_the_benchmark_and_the_planner():
    from whisperq.planner.models import profiles

    runs = json.loads((ROOT / "docs" / "benchmarks" / "models.json").read_text(encoding="utf-8"))["results"]
    measured = {r["model"]: r["realTimeFactor"] for r in runs if r["beamSize"] == 5 and r["threads"] == 1}
    planned = profiles(ROOT / "docs")
    tiny = model_facts.FACTS["tiny.en"].real_time
    assert set(model_facts.FACTS) == set(planned)
    for name, facts in model_facts.FACTS.items():
        assert facts.measured == planned[name].measured
        if facts.measured:
            assert facts.real_time == measured[name]
        else:  # the planner's estimate, against tiny.en's measured speed
            assert facts.real_time == pytest.approx(tiny * planned[name].speed, rel=0.01)


def test_an_event_sent_for_a_key_when_parsed_then_the_key_a_notification_would_give():
    from whisperq.aws.s3_events import object_created_body, parse_s3_notification

    key = "audio/6248633d-1631-41f1-9fa2-547eb5e6415a/my café+1.wav"
    [event] = parse_s3_notification(object_created_body("b", key, 12))
    assert (event.bucket, event.key, event.size_bytes) == ("b", key, 12)
    tiers = Tiers.of("tiny.en", ["base"])
    assert not tiers.serves_key(key) and tiers.serves_key("audio/base/x/a.wav")
