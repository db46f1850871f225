"""Two model tiers on one twin (`whisperq local up --models tiny.en,base`): a job on each submitted at
once, each run by its own tier's workers; the multilingual model's language detection and translation
from the CLI; the OpenAI SDK choosing a model by name; an unknown model refused with the list."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from tests.conftest import EXAMPLES, normalised
from tests.e2e.conftest import run_cli, start_twin, stop_twin
from whisperq.client import Client

pytestmark = pytest.mark.e2e


def test_twin_when_two_model_tiers_then_each_job_on_its_own_tier_and_base_detects_and_translates(tmp_path):
    state_dir = tmp_path / "state"
    process, running = start_twin(state_dir, {"WHISPERQ_CACHE_DIR": str(tmp_path / "cache"),
                                              "WHISPERQ_QUEUE_MAX_CONCURRENCY": "1"},
                                  timeout_s=240, args=("--models", "tiny.en,base"))
    try:
        assert {tier: info["model"] for tier, info in running["tiers"].items()} == {"tiny-en": "tiny.en",
                                                                                    "base": "base"}
        assert running["resources"]["tiers"]["base"]["queue_url"].endswith("/whisperq-transcription-base")
        client = Client(running["apiUrl"], api_key=running["apiKey"])
        # Submitted at once: each waits only for its own tier's worker.
        with ThreadPoolExecutor(2) as pool:
            english, french = pool.map(lambda args: client.transcribe(str(EXAMPLES / args[0]), model=args[1],
                                                                      timeout_s=240),
                                       [("meeting.wav", None), ("french.ogg", "base")])
        assert (english.model, english["tier"], english.details["model"]) == ("tiny.en", "tiny-en", "tiny.en")
        assert "budget" in normalised(client.transcript(english.job_id))
        assert (french.model, french["tier"], french.details["model"]) == ("base", "base", "base")
        assert french.details["language"] == "fr" and french.details["languageProbability"] > 0.3

        spanish = run_cli(state_dir, "transcribe", str(EXAMPLES / "spanish.ogg"), "--model", "base", "--translate",
                          timeout_s=180)
        assert spanish.returncode == 0, spanish.stderr
        assert "good" in normalised(spanish.stdout) and "presupuesto" not in normalised(spanish.stdout)

        dead = run_cli(state_dir, "dlq", "--model", "base", "list", "--json")  # the base tier's own DLQ
        assert dead.returncode == 0 and json.loads(dead.stdout) == [], dead.stderr
        unknown = run_cli(state_dir, "transcribe", str(EXAMPLES / "meeting.wav"), "--model", "large-v3")
        assert unknown.returncode == 2 and "tiny.en, base" in unknown.stderr, unknown.stderr

        ai = openai.OpenAI(api_key=running["apiKey"], base_url=running["apiUrl"] + "/v1", max_retries=0)
        listed = {m.id: m.model_dump() for m in ai.models.list().data}
        assert listed["base"]["languages"] != ["en"] and listed["tiny.en"]["languages"] == ["en"]
        assert listed["whisper-1"]["aliasOf"] == "tiny.en" and listed["base"]["realTime"] > 0
        with open(EXAMPLES / "french.ogg", "rb") as audio:
            answer = ai.audio.transcriptions.create(model="base", file=audio, response_format="verbose_json")
        assert answer.language == "french"
    finally:
        assert stop_twin(process) == 0
