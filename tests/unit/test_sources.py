"""Where a job's audio may come from (core/sources.py), the settings that grant it, and the bulk run's
bookkeeping (cli/bulk.py)."""

from __future__ import annotations

import pytest

from whisperq.cli.bulk import Manifest, default_manifest, idempotency_key, is_prefix
from whisperq.cli.errors import CliError
from whisperq.config import Settings
from whisperq.core.errors import ConfigError
from whisperq.core.sources import (
    S3Object,
    SourceRefused,
    WebAudio,
    fetch_message,
    in_inbox,
    inbox_job_id,
    outputs_stem,
    parse_fetch_message,
    parse_source,
)


def test_parse_source_when_s3_object_then_bucket_key_and_file_name():
    source = parse_source("s3://my-calls.archive/2026/12/call one.wav")
    assert source == S3Object("my-calls.archive", "2026/12/call one.wav")
    assert source.filename == "call one.wav" and str(source) == "s3://my-calls.archive/2026/12/call one.wav"


def test_parse_source_when_https_url_then_its_last_part_is_the_file_name():
    source = parse_source("https://cdn.example.com/podcasts/ep%2012.mp3?sig=abc")
    assert isinstance(source, WebAudio) and source.filename == "ep 12.mp3"


@pytest.mark.parametrize(("raw", "says"), [
    ("s3://Bad_Bucket/a.wav", "not a valid S3 bucket name"),
    ("s3://bucket", "names no object"),
    ("s3://bucket/prefix/", "names no object"),
    ("http://example.com/a.wav", "must be https"),
    ("file:///etc/passwd", "must be https"),
    ("https:///a.wav", "no host"),
    ("https://example.com:99999/a.wav", "invalid host or port"),
    ("https://u:p@example.com/a.wav", "credentials"),
    ("https://127.0.0.1/a.wav", "private"),
    ("https://LOCALHOST/a.wav", "private"),
    ("https://metadata.localhost/a.wav", "private"),
    ("https://[::ffff:169.254.169.254]/a.wav", "private"),
    ("https://[64:ff9b::a00:1]/a.wav", "private"),  # NAT64 of 10.0.0.1
    ("https://a..example.com/x.mp3", "invalid host"),
    ("https://example.com/a b.wav", "spaces or control characters"),
    ("https://example.com/a\x00.wav", "spaces or control characters"),
    ("", "s3://bucket/key"),
    (42, "s3://bucket/key"),
    ("https://example.com/" + "a" * 2048, "at most 2048"),
])
def test_parse_source_when_refused_then_says_why(raw, says):
    with pytest.raises(SourceRefused, match=says):
        parse_source(raw)


def test_parse_source_when_private_allowed_then_http_and_local_hosts_pass():
    assert parse_source("http://127.0.0.1:8080/a.wav", allow_private=True) == WebAudio("http://127.0.0.1:8080/a.wav")


def test_fetch_message_when_read_back_then_its_job_and_other_bodies_are_none():
    assert parse_fetch_message(fetch_message("0b9e7c1e-6a5f-4c9b-8d3e-2f1a0b9c8d7e")) == \
        "0b9e7c1e-6a5f-4c9b-8d3e-2f1a0b9c8d7e"
    assert parse_fetch_message('{"Records": []}') is None
    assert parse_fetch_message('{"kind": "whisperq.chunk", "jobId": "x"}') is None
    with pytest.raises(ValueError, match="without a job id"):
        parse_fetch_message('{"kind": "whisperq.fetch"}')


def test_inbox_when_the_same_version_then_the_same_job_and_another_version_another():
    first = inbox_job_id("bucket", "inbox/a.wav", "seq-1")
    assert first == inbox_job_id("bucket", "inbox/a.wav", "seq-1")
    assert first != inbox_job_id("bucket", "inbox/a.wav", "seq-2") != inbox_job_id("bucket", "inbox/b.wav", "seq-1")
    assert in_inbox("inbox/a.wav", "inbox/") and not in_inbox("inbox/", "inbox/") and not in_inbox("a.wav", "")


def test_outputs_stem_when_no_output_prefix_then_beside_else_under_it():
    assert outputs_stem("inbox/team/a.wav", "inbox/", "") == "inbox/team/a.wav"
    assert outputs_stem("inbox/team/a.wav", "inbox/", "out/") == "out/team/a.wav"


@pytest.mark.parametrize(("changes", "says"), [
    ({"inbox_prefix": "inbox"}, "ending in '/'"),
    ({"inbox_prefix": "audio/drop/"}, "outside audio/"),
    ({"inbox_output_prefix": "inbox/out/"}, "must not be inside"),
    ({"source_fetch_timeout_s": 0}, "1 to 900"),
    ({"source_buckets": "whisperq-local,other"}, "own bucket"),
])
def test_settings_when_sources_misconfigured_then_refused_at_start(changes, says):
    with pytest.raises(ConfigError, match=says):
        Settings.from_env({}, **changes)


def test_settings_granted_buckets_when_listed_or_none():
    assert Settings.from_env({"WHISPERQ_SOURCE_BUCKETS": "a-bucket, b-bucket"}).granted_buckets == \
        ("a-bucket", "b-bucket")
    assert Settings.from_env({"WHISPERQ_SOURCE_BUCKETS": "none"}).granted_buckets == ()
    assert Settings.from_env({}).granted_buckets == ("whisperq-local-sources",)  # the twin's stand-in


def test_bulk_when_prefix_or_object_then_told_apart_and_keys_stable():
    assert is_prefix("s3://bucket/calls/") and is_prefix("s3://bucket") and is_prefix("s3://bucket/")
    assert not is_prefix("s3://bucket/calls/a.wav") and not is_prefix("https://example.com/a/")
    key = idempotency_key("bucket", "calls/a b.wav", "etag1")
    assert key == idempotency_key("bucket", "calls/a b.wav", "etag1")
    assert key != idempotency_key("bucket", "calls/a b.wav", "etag2")
    assert key.isascii() and " " not in key and len(key) <= 255
    assert default_manifest("bucket", "calls/2026 dec/").name == "whisperq-bucket_calls_2026_dec.manifest.jsonl"


def test_manifest_when_its_last_line_was_cut_short_then_that_create_is_made_again(tmp_path):
    path = tmp_path / "m.jsonl"
    manifest = Manifest.load(path)
    manifest.add("s3://b/a.wav", "job-a", "e1")
    with open(path, "a") as handle:
        handle.write('{"source": "s3://b/b.wav", "jobI')  # killed mid-write
    resumed = Manifest.load(path)
    assert resumed.jobs == {"s3://b/a.wav": "job-a"}
    resumed.add("s3://b/b.wav", "job-b", "e2")
    assert Manifest.load(path).jobs == {"s3://b/a.wav": "job-a", "s3://b/b.wav": "job-b"}
    path.write_text('garbage\n{"source": "s3://b/a.wav", "jobId": "job-a"}\n')
    with pytest.raises(CliError, match="line 1"):
        Manifest.load(path)
