"""The engine's measured speed, which decides whether a file fits in an invocation whole."""

import pytest

from whisperq.transcriber.context import UNKNOWN_MODEL_S_PER_AUDIO_S, SpeedMeter


class _Engine:
    def __init__(self, model_name, seconds_per_audio_second=None):
        self.model_name = model_name
        if seconds_per_audio_second is not None:
            self.seconds_per_audio_second = seconds_per_audio_second


@pytest.mark.parametrize(("model", "prior"), [
    ("tiny.en", 0.1), ("base", 0.2), ("Systran/faster-whisper-large-v3", 3.0), ("distil-large-v3", 3.0),
    ("small.en", 0.5), ("/opt/models/my-own-model", UNKNOWN_MODEL_S_PER_AUDIO_S),
])
def test_prior_when_nothing_measured_then_by_model_family_and_pessimistic(model, prior):
    assert SpeedMeter.for_engine(_Engine(model)).s_per_audio_s == prior


def test_meter_when_the_engine_is_slower_then_at_once_and_when_faster_then_halfway():
    meter = SpeedMeter.for_engine(_Engine("synthetic", 0.05))  # the synthetic engine says its own speed
    assert meter.expected_s(100) == pytest.approx(5.0)
    meter.record(100, 20)  # 0.2 s a second: slower, taken at once
    assert meter.s_per_audio_s == pytest.approx(0.2)
    meter.record(100, 10)  # 0.1: faster, halfway there
    assert meter.s_per_audio_s == pytest.approx(0.15)
    meter.record(0.5, 100)  # too short to say anything
    assert meter.s_per_audio_s == pytest.approx(0.15)
