"""Models by hub id, fetched at build time: `whisperq models fetch` runs the hub's real client against a
hub on 127.0.0.1 (tests/fakehub.py, HF_ENDPOINT pointed at it) that serves the bundled tiny.en files;
at run time the manifest is all there is, and nothing is downloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakehub import FakeHub
from whisperq.core.errors import ConfigError
from whisperq.core.options import TranscribeOptions
from whisperq.transcriber import model_manifest, model_store
from whisperq.transcriber.audio import decode
from whisperq.transcriber.models import resolve_ct2_model

ROOT = Path(__file__).resolve().parents[2]
REPO = "Systran/faster-whisper-tiny.en"
TINY = resolve_ct2_model("tiny.en")


def _cli(store: Path, hub: FakeHub | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HOME": str(store.parent / "hf-home"),
           "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    if hub is not None:
        env["HF_ENDPOINT"] = hub.url
    return subprocess.run([sys.executable, "-m", "whisperq.cli.main", "models", *args], capture_output=True,
                          text=True, timeout=300, env=env)


def test_fetch_when_the_hub_serves_a_model_then_it_is_checked_recorded_and_runs_offline(tmp_path):
    store = tmp_path / "store"
    with FakeHub({REPO: TINY}) as hub:
        result = _cli(store, hub, "fetch", f"tiny-hub={REPO}", "tiny.en", "--dir", str(store))
        assert result.returncode == 0, result.stderr
        assert any(r.startswith("GET /api/models/" + REPO) for r in hub.requests)
        assert any(r == f"GET /{REPO}/resolve/{hub.commits[REPO]}/model.bin" for r in hub.requests)
    manifest = json.loads((store / "manifest.json").read_text())
    entries = {entry["name"]: entry for entry in manifest["models"]}
    fetched = entries["tiny-hub"]
    assert fetched["source"] == "hub" and fetched["repo"] == REPO and fetched["revision"] == hub.commits[REPO]
    by_name = {f["name"]: f for f in fetched["files"]}
    assert set(by_name) == {"config.json", "model.bin", "tokenizer.json", "vocabulary.txt"}
    assert by_name["model.bin"]["sha256"] == model_manifest.sha256_of(TINY / "model.bin")
    assert by_name["model.bin"]["size"] == (TINY / "model.bin").stat().st_size
    assert entries["tiny.en"]["source"] == "bundled"
    assert not (store / "models" / "tiny-hub" / ".cache").exists()  # the client's download state is not kept

    # Run time: the hub is gone, the model resolves from the manifest and transcribes.
    from whisperq.transcriber.engines.faster import FasterWhisperEngine

    engine = FasterWhisperEngine("tiny-hub", cache_dir=store)
    audio = decode(str(ROOT / "examples" / "meeting.wav"), "meeting.wav")
    text = " ".join(s.text for s in engine.transcribe(audio, TranscribeOptions()).segments).lower()
    assert "quarterly budget" in text and "hiring plan" in text, text
    listed = json.loads(_cli(store, None, "--dir", str(store), "--json").stdout)
    assert {row["name"]: row["source"] for row in listed}["tiny-hub"] == "hub"


def test_fetch_when_a_file_is_corrupted_then_refused_and_nothing_is_kept(tmp_path):
    store = tmp_path / "store"
    with FakeHub({REPO: TINY}, corrupt={"model.bin"}) as hub:
        result = _cli(store, hub, "fetch", f"tiny-hub={REPO}", "--dir", str(store))
    assert result.returncode != 0
    assert "model.bin" in result.stderr and "checksum" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (store / "manifest.json").exists()
    assert not any((store / "models").glob("*tiny-hub*")) if (store / "models").exists() else True


def test_fetch_when_the_repository_is_unknown_then_the_hub_refusal_is_said(tmp_path):
    store = tmp_path / "store"
    with FakeHub({REPO: TINY}) as hub:
        result = _cli(store, hub, "fetch", "someone/no-such-model", "--dir", str(store))
    assert result.returncode != 0 and "no-such-model" in result.stderr and "Traceback" not in result.stderr
    assert not (store / "manifest.json").exists()


def test_resolve_when_the_model_is_not_in_the_manifest_then_the_build_argument_is_named(tmp_path):
    with pytest.raises(ConfigError) as refused:
        resolve_ct2_model("Systran/faster-whisper-large-v3", tmp_path)
    message = str(refused.value)
    assert model_manifest.BUILD_ARGUMENT in message and "whisperq models fetch" in message and "tiny.en" in message


def test_resolve_when_a_fetched_file_is_missing_then_it_says_to_fetch_again(tmp_path):
    folder = tmp_path / "models" / "mine"
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"x" * 10)
    files = [model_manifest.ModelFile("model.bin", 11, "0")]
    entry = model_manifest.ModelEntry("mine", "directory", "models/mine", files)
    model_manifest.write_manifest(tmp_path, {"mine": entry})
    with pytest.raises(ConfigError, match="not the size the manifest records"):
        resolve_ct2_model("mine", tmp_path)


@pytest.mark.parametrize("spec", ["bad name=owner/repo", "x=not a repo"])
def test_fetch_when_the_name_or_source_is_nonsense_then_a_clear_error(tmp_path, spec):
    with pytest.raises(ConfigError):
        model_store.fetch([spec], tmp_path, log=lambda message: None)
