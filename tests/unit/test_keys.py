import pytest

from whisperq.core.errors import InvalidRequest
from whisperq.core.keys import audio_key, clean_filename, job_id_from_audio_key, transcript_key

JOB = "6248633d-1631-41f1-9fa2-547eb5e6415a"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("meeting.wav", "meeting.wav"),
        ("  my weekly meeting.wav ", "my weekly meeting.wav"),
        ("café réunion.flac", "café réunion.flac"),
        ("cafe\u0301.mp3", "café.mp3"),  # normalised to NFC
    ],
)
def test_clean_filename_when_acceptable_then_kept(given, expected):
    assert clean_filename(given) == expected


@pytest.mark.parametrize(
    "bad", ["", "   ", None, 42, "../secret.wav", "a/b.wav", "a\\b.wav", "..", "bell\x07.wav", "new\nline.wav",
            "rtl\u202e.wav", "x" * 256 + ".wav"]
)
def test_clean_filename_when_unsafe_then_invalid_request(bad):
    with pytest.raises(InvalidRequest):
        clean_filename(bad)


def test_audio_key_round_trips_to_job_id():
    key = audio_key(JOB, "my file.wav", "tiny-en")
    assert key == f"audio/tiny-en/{JOB}/my file.wav"
    assert job_id_from_audio_key(key) == JOB


def test_audio_key_before_tiers_still_names_its_job():
    assert job_id_from_audio_key(f"audio/{JOB}/a.wav") == JOB


@pytest.mark.parametrize(
    "key", ["transcripts/x/y.txt", f"audio/{JOB}", f"audio/{JOB}/", "audio/not-a-uuid/a.wav",
            f"audio/{JOB}/nested/a.wav", f"audio/tiny-en/{JOB}/nested/a.wav", f"audio/tiny-en/{JOB}/",
            "other/a.wav"]
)
def test_job_id_from_audio_key_when_foreign_then_none(key):
    assert job_id_from_audio_key(key) is None


def test_transcript_key_layout():
    assert transcript_key(JOB, "srt") == f"transcripts/{JOB}/{JOB}.srt"
