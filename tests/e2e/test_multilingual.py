"""The multilingual model through the whole twin (API, S3, SQS, worker processes): a French upload's
language detected, and Spanish translated, from the CLI."""

from __future__ import annotations

import json

import pytest

from tests.conftest import EXAMPLES, normalised
from tests.e2e.conftest import run_cli, start_twin, stop_twin

pytestmark = pytest.mark.e2e


def test_twin_when_model_is_base_then_languages_detected_and_translated(tmp_path):
    process, _ = start_twin(tmp_path / "state", {"WHISPERQ_MODEL": "base",
                                                 "WHISPERQ_CACHE_DIR": str(tmp_path / "cache")})
    try:
        french = run_cli(tmp_path / "state", "transcribe", str(EXAMPLES / "french.ogg"), "--json", timeout_s=180)
        assert french.returncode == 0, french.stderr
        job = json.loads(french.stdout)
        assert job["details"]["language"] == "fr" and job["details"]["languageProbability"] > 0.3
        spanish = run_cli(tmp_path / "state", "transcribe", str(EXAMPLES / "spanish.ogg"), "--translate",
                          timeout_s=180)
        assert spanish.returncode == 0, spanish.stderr
        assert "good" in normalised(spanish.stdout) and "presupuesto" not in normalised(spanish.stdout)
    finally:
        assert stop_twin(process) == 0
