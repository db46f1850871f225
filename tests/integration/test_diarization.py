"""Diarization with the real speaker encoder: the numpy encoder against PyTorch's run of the same weights,
the two voices of examples/dialogue.ogg told apart, one voice kept as one, one set of speakers across chunks
clustered at once; then diarized jobs on moto with tiny.en, whole and fanned out."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import requests

from tests.conftest import EXAMPLES
from whisperq.core.jobs import JobStatus
from whisperq.core.speakers import SpeakerHints, SpeakerTurn
from whisperq.transcriber.audio import SAMPLE_RATE, decode
from whisperq.transcriber.diarizers import SpeechEmbeddings
from whisperq.transcriber.diarizers.ge2e import Ge2eDiarizer
from whisperq.transcriber.diarizers.voice_encoder import checkpoint_path

DIALOGUE = EXAMPLES / "dialogue.ogg"  # two espeak-ng voices, nine turns of 1.5 to 13.5 s, 64 s


def reference() -> list[SpeakerTurn]:
    turns = []
    for line in (EXAMPLES / "dialogue.rttm").read_text().splitlines():
        fields = line.split()
        turns.append(SpeakerTurn(float(fields[3]), float(fields[3]) + float(fields[4]), fields[7]))
    return turns


def agreement(turns: list[SpeakerTurn], truth: list[SpeakerTurn]) -> tuple[float, int]:
    """The share of the reference's speech labelled with its speaker (best one-to-one mapping, 10 ms
    frames), and how many speakers were found."""
    frames = int(max(t.end for t in truth) * 100) + 1

    def track(found: list[SpeakerTurn]) -> list[str | None]:
        out: list[str | None] = [None] * frames
        for turn in found:
            for frame in range(int(turn.start * 100), min(int(turn.end * 100), frames)):
                out[frame] = turn.speaker
        return out

    said, heard = track(truth), track(turns)
    pairs: dict[tuple[str, str], int] = {}
    for a, b in zip(said, heard, strict=True):
        if a is not None and b is not None:
            pairs[(a, b)] = pairs.get((a, b), 0) + 1
    matched, used = 0, set()
    for (a, b), count in sorted(pairs.items(), key=lambda item: -item[1]):
        if a not in {x for x, _ in used} and b not in {y for _, y in used}:
            used.add((a, b))
            matched += count
    return matched / sum(1 for a in said if a is not None), len({t.speaker for t in turns})


@pytest.fixture(scope="module")
def diarizer():
    return Ge2eDiarizer()


@pytest.fixture(scope="module")
def dialogue():
    return decode(str(DIALOGUE), "dialogue.ogg")


def test_encoder_when_run_with_numpy_then_equals_pytorch_on_the_same_weights(diarizer):
    torch = pytest.importorskip("torch")
    state = torch.load(checkpoint_path(), map_location="cpu", weights_only=False)["model_state"]
    assert all(np.array_equal(state[name].numpy(), diarizer.encoder.weights[name]) for name in diarizer.encoder.weights)
    lstm, linear = torch.nn.LSTM(40, 256, 3, batch_first=True), torch.nn.Linear(256, 256)
    lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
    linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
    mels = np.random.default_rng(0).random((4, 160, 40)).astype(np.float32)
    with torch.no_grad():
        _, (hidden, _) = lstm(torch.from_numpy(mels))
        raw = torch.relu(linear(hidden[-1]))
        expected = (raw / torch.norm(raw, dim=1, keepdim=True)).numpy()
    assert np.abs(diarizer.encoder.embed_frames(mels) - expected).max() < 1e-4


def test_diarizer_when_two_voices_then_two_speakers_on_their_turns(diarizer, dialogue):
    turns = diarizer.cluster(diarizer.embed(dialogue), SpeakerHints())
    share, found = agreement(turns, reference())
    assert found == 2 and share >= 0.95, (share, turns)


def test_diarizer_when_one_voice_then_one_speaker(diarizer):
    passage = decode(str(EXAMPLES / "passage.ogg"), "passage.ogg")[:60 * SAMPLE_RATE]
    turns = diarizer.cluster(diarizer.embed(passage), SpeakerHints())
    assert turns and {t.speaker for t in turns} == {"SPEAKER_00"}


def test_diarizer_when_silence_or_a_blip_then_nothing_to_cluster(diarizer):
    assert len(diarizer.embed(np.zeros(5 * SAMPLE_RATE, np.float32))) == 0
    assert diarizer.cluster(SpeechEmbeddings.empty(), SpeakerHints()) == []


def test_diarizer_when_chunks_embedded_apart_then_clustered_at_once_as_one_recording(diarizer, dialogue):
    # Cut where the reference has pauses, as fan-out does; each piece embedded on its own, then joined.
    truth = reference()
    cuts = [0.0, (truth[3].end + truth[4].start) / 2, (truth[6].end + truth[7].start) / 2, len(dialogue) / SAMPLE_RATE]
    parts = [diarizer.embed(dialogue[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)]).shifted(a)
             for a, b in zip(cuts, cuts[1:], strict=False)]
    turns = diarizer.cluster(SpeechEmbeddings.joined(parts), SpeakerHints())
    share, found = agreement(turns, truth)
    assert found == 2 and share >= 0.95, (share, turns)


# --- diarized jobs on moto, with tiny.en ----------------------------------------------------------
@pytest.fixture
def queue_config(queue_config):
    # Fan out anything over 40 s into chunks of 20 s or more, with workers idle to take them.
    return replace(queue_config, fanout_min_duration_s=40, chunk_s=20, max_receive_count=2, max_concurrency=4)


def upload(stack, options: dict) -> str:
    created = stack.service.create_upload({"filename": "dialogue.ogg", "contentType": "audio/ogg",
                                           "contentLength": DIALOGUE.stat().st_size, "options": options})
    requests.put(created["uploadUrl"], data=DIALOGUE.read_bytes(), headers=created["uploadHeaders"],
                 timeout=30).raise_for_status()
    return created["jobId"]


def speakers_of(stack, job_id: str) -> tuple[dict, list[SpeakerTurn]]:
    data = json.loads(stack.blobs.get_text(f"transcripts/{job_id}/{job_id}.json"))
    return data, [SpeakerTurn(s["start"], s["end"], s["speaker"]) for s in data["segments"]]


def test_job_when_diarized_whole_then_speakers_in_every_format_and_in_its_details(stack, worker):
    job_id = upload(stack, {"diarize": True, "beamSize": 1})
    received = stack.receive_all(1)
    stack.busy()  # no idle worker: transcribed whole
    assert worker.invoke(received) == (1, 0)
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.fanout is None, job
    details = job.public_details()
    assert details["speakers"] == 2 and details["diarizeS"] > 0 and "diarization" not in details
    data, turns = speakers_of(stack, job_id)
    assert [s["label"] for s in data["speakers"]] == ["SPEAKER_00", "SPEAKER_01"]
    assert all(w["speaker"] == s["speaker"] for s in data["segments"] for w in s["words"])
    share, found = agreement(turns, reference())
    assert found == 2 and share >= 0.85, share
    txt = stack.blobs.get_text(f"transcripts/{job_id}/{job_id}.txt").splitlines()
    assert all(line.startswith(("[SPEAKER_00] ", "[SPEAKER_01] ")) for line in txt), txt
    assert "<v SPEAKER_01>" in stack.blobs.get_text(f"transcripts/{job_id}/{job_id}.vtt")


def test_job_when_diarized_and_fanned_out_then_one_set_of_speakers_across_chunks(stack, worker):
    job_id = upload(stack, {"diarize": True, "beamSize": 1})
    assert worker.drain() >= 3
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.fanout is not None and job.fanout.chunks >= 2, job
    data, turns = speakers_of(stack, job_id)
    assert job.run.speakers == 2 and len(data["speakers"]) == 2
    share, found = agreement(turns, reference())
    assert found == 2 and share >= 0.85, share


def test_job_when_diarized_audio_is_silent_then_completed_with_no_speaker_and_a_reason(stack, worker, tmp_path):
    from whisperq.transcriber.audio import encode_flac

    silent = tmp_path / "silence.flac"
    silent.write_bytes(encode_flac(np.zeros(3 * SAMPLE_RATE, np.float32)))
    created = stack.service.create_upload({"filename": "silence.flac", "contentType": "audio/flac",
                                           "contentLength": silent.stat().st_size, "options": {"diarize": True}})
    requests.put(created["uploadUrl"], data=silent.read_bytes(), headers=created["uploadHeaders"],
                 timeout=30).raise_for_status()
    worker.drain()
    job = stack.jobs.get(created["jobId"])
    assert job.status is JobStatus.COMPLETED, job
    assert job.run.speakers == 0 and "no speech" in (job.run.diarization or "")
