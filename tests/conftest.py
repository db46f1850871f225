"""Fixtures shared by every tier."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
EVENTS = Path(__file__).resolve().parent / "events"

# Tests never talk to real AWS: fake credentials, and no profile or config file of the user's.
for name, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}.items():
    os.environ[name] = value
os.environ.pop("AWS_PROFILE", None)

# The phrases of examples/meeting.wav that tiny.en gets right on espeak-ng speech (it hears
# "review" as "remove" or "renew", so that word is not asserted).
MEETING_PHRASES = ("good morning everyone", "quarterly budget", "hiring plan", "before friday")


def normalised(text: str) -> str:
    return " ".join("".join(ch.lower() if ch.isalnum() or ch.isspace() else " " for ch in text).split())


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]
