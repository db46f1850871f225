"""The web page in a real browser: Debian's headless Chromium, driven by Playwright's Python package,
on a running twin. A person uploads, watches, reads, plays and downloads; the page must say what went
wrong in words; it must work on a phone's width and pass axe-core's accessibility check.

Screenshots go to the test's own folder; with WHISPERQ_UPDATE_SCREENSHOTS=1 to docs/screenshots/."""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import EXAMPLES, ROOT
from whisperq.client import Client

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
# As root on a closed network: no sandbox, and none of Chromium's own calls home.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make test` installs it (scripts/install_browser.sh)"
    assert AXE.exists(), "axe-core is missing: `make test` installs it (npm ci in tests/browser)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return SCREENSHOTS if os.environ.get("WHISPERQ_UPDATE_SCREENSHOTS") == "1" else tmp_path_factory.mktemp("shots")


def open_page(browser, running: dict, key: str | None = None, **context) -> Page:
    # bypass_csp: the page's policy allows its own scripts only; axe-core is added by the test.
    page = browser.new_context(accept_downloads=True, bypass_csp=True, **context).new_page()
    page.goto(running["apiUrl"] + "/app")
    page.fill("#api-key", key if key is not None else running["apiKey"])
    page.click("text=Save")
    return page


def serious_violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])})" for v in result["violations"]
            if v["impact"] in ("serious", "critical")]


def test_page_when_audio_dropped_then_progress_transcript_player_and_downloads(browser, twin, shots):
    page = open_page(browser, twin[1])
    # A slow uplink, so that the upload's progress is there to be seen.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": 150_000})
    page.set_input_files("#files", str(EXAMPLES / "meeting.wav"))
    card = page.locator("#uploads article").first
    expect(card.locator(".status")).to_have_text(re.compile(r"uploading( \d+%)?"))
    page.wait_for_function("document.querySelector('#uploads progress').value > 0.3", timeout=30_000)
    page.screenshot(path=str(shots / "upload.png"))
    cdp.send("Network.emulateNetworkConditions", {"offline": False, "latency": 0, "downloadThroughput": -1,
                                                  "uploadThroughput": -1})
    expect(card.locator(".status")).to_have_text("COMPLETED", timeout=90_000)
    expect(card.locator("ol.segments")).to_contain_text("quarterly budget", timeout=10_000)
    expect(card.locator(".meta")).to_contain_text("x real time")
    # A segment's time plays the audio from there.
    page.evaluate("document.querySelector('#uploads audio').currentTime = 4")
    card.locator("ol.segments button").first.click()
    assert page.evaluate("document.querySelector('#uploads audio').currentTime") < 1
    with page.expect_download() as download:
        card.get_by_text("Download srt").click()
    srt = Path(download.value.path()).read_text(encoding="utf-8")
    assert srt.startswith("1\n00:00:00,000 --> ") and "budget" in srt
    assert card.get_by_text("Download vtt").count() == 1 and card.get_by_text("Download json").count() == 1
    page.screenshot(path=str(shots / "transcript.png"), full_page=True)
    assert serious_violations(page) == []


def test_page_when_speakers_labelled_then_a_colour_each_and_renamable_in_the_view(browser, twin, shots):
    page = open_page(browser, twin[1])
    page.check("#diarize")
    page.set_input_files("#files", str(EXAMPLES / "dialogue.ogg"))
    card = page.locator("#uploads article").first
    expect(card.locator(".status")).to_have_text("COMPLETED", timeout=120_000)
    expect(card.locator(".meta")).to_contain_text("2 speakers")
    tags = card.locator("ol.segments .speaker")
    expect(tags.first).to_have_text("SPEAKER_00", timeout=10_000)
    assert set(tags.all_inner_texts()) == {"SPEAKER_00", "SPEAKER_01"}
    assert card.locator(".speaker.voice-0").count() and card.locator(".speaker.voice-1").count()
    card.get_by_label("name for SPEAKER_00").fill("Ada")
    assert set(tags.all_inner_texts()) == {"Ada", "SPEAKER_01"}
    page.screenshot(path=str(shots / "speakers.png"), full_page=True)
    assert serious_violations(page) == []


def test_page_when_file_is_not_audio_then_its_failed_reason_and_the_operator_view_shows_it(browser, twin, shots):
    page = open_page(browser, twin[1])
    noise = random.Random(5).randbytes(6000)
    page.set_input_files("#files", [{"name": "broken.wav", "mimeType": "audio/wav", "buffer": b"RIFF" + noise},
                                    {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
    broken = page.locator("#uploads article", has_text="broken.wav")
    expect(broken.locator(".error")).to_contain_text("could not be decoded as audio", timeout=60_000)
    expect(broken.locator(".status")).to_have_text("FAILED")
    notes = page.locator("#uploads article", has_text="notes.txt")
    expect(notes.locator(".error")).to_contain_text("not a supported audio file")
    expect(page.locator("#ops-failures")).to_contain_text("broken.wav: broken.wav could not be decoded",
                                                          timeout=10_000)
    expect(page.locator("#ops-dead")).to_have_text("0")
    page.locator("section", has_text="Operator view").screenshot(path=str(shots / "operator.png"))
    page.select_option("#status-filter", "FAILED")
    expect(page.locator("#jobs tr")).to_have_count(1)
    expect(page.locator("#jobs tr")).to_contain_text("broken.wav")


def test_page_when_given_an_s3_object_or_a_refused_url_then_transcribed_or_told_why(browser, twin):
    import boto3

    from whisperq.local.twin import LOCAL_CREDENTIALS

    running = twin[1]
    bucket = running["sourceBuckets"][0]
    boto3.client("s3", endpoint_url=running["endpointUrl"], region_name=running["region"],
                 aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]).put_object(
        Bucket=bucket, Key="page/standup.wav", Body=(EXAMPLES / "standup.wav").read_bytes())
    page = open_page(browser, running)
    page.fill("#source", f"s3://{bucket}/page/standup.wav")
    page.click("#source-form button")
    card = page.locator("#uploads article", has_text="standup.wav")
    expect(card.locator(".status")).to_have_text("COMPLETED", timeout=90_000)
    expect(card.locator("ol.segments")).not_to_be_empty()
    page.fill("#source", "https://169.254.169.254/latest/meta-data/")
    page.click("#source-form button")
    refused = page.locator("#uploads article").first
    expect(refused.locator(".error")).to_contain_text("private, loopback or link-local")


def test_page_when_key_is_wrong_then_says_so_in_words(browser, twin):
    page = open_page(browser, twin[1], key="not-the-key")
    expect(page.locator("#message")).to_have_text("The API key was not accepted. Check it, then save it again.")
    page.set_input_files("#files", str(EXAMPLES / "meeting.wav"))
    expect(page.locator("#uploads .error").first).to_contain_text("API key was not accepted")


def test_page_when_a_job_waits_then_it_can_be_cancelled_from_the_list(browser, twin):
    # A job that waits for its audio.
    created = Client(twin[1]["apiUrl"], twin[1]["apiKey"]).create_upload("never-sent.wav", size_bytes=9)
    page = open_page(browser, twin[1])
    row = page.locator("#jobs tr", has_text=created["jobId"])
    row.get_by_role("button", name="cancel never-sent.wav").click()
    expect(row.locator(".status")).to_have_text("CANCELLED")
    assert Client(twin[1]["apiUrl"], twin[1]["apiKey"]).get(created["jobId"]).status == "CANCELLED"


def test_page_when_on_a_phone_then_fits_the_width_and_passes_the_accessibility_check(browser, twin):
    page = open_page(browser, twin[1], viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page.set_input_files("#files", str(EXAMPLES / "meeting.wav"))
    expect(page.locator("#uploads .status").first).to_have_text("COMPLETED", timeout=90_000)
    expect(page.locator("#uploads ol.segments")).to_contain_text("budget", timeout=10_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert serious_violations(page) == []
