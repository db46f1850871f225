"""The SDK's own logic: typed jobs, errors by status, waiting until any end. (Against a running twin
it is exercised by the CLI's tests, the load tests and the README example.)"""

from __future__ import annotations

import json

import pytest

from whisperq.client import (
    AuthenticationError,
    Client,
    ConflictError,
    InvalidRequestError,
    Job,
    NotFoundError,
    ServiceError,
    UnreachableError,
    WaitTimeout,
)
from whisperq.core.errors import WhisperqError


class Answer:
    def __init__(self, status: int, payload):
        self.status_code = status
        self._payload = payload

    def json(self):
        return self._payload


class Session:
    def __init__(self, answers):
        self.headers: dict = {}
        self.answers = iter(answers)
        self.sent: list = []

    def request(self, method, url, **kwargs):
        self.sent.append((method, url, kwargs.get("params")))
        return next(self.answers)


def job(status: str, **details) -> dict:
    return {"jobId": "j1", "status": status, "details": details}


def test_job_when_read_then_typed_and_still_the_api_json():
    fanned = Job({**job("PROCESSING", chunks=20, chunksDone=7, language="fr"), "error": None})
    assert (fanned.job_id, fanned.status, fanned.chunks, fanned.language) == ("j1", "PROCESSING", (7, 20), "fr")
    assert not fanned.is_final and Job(job("CANCELLED")).is_final and Job(job("QUEUED")).chunks is None
    assert json.loads(json.dumps(fanned))["details"]["chunksDone"] == 7  # serialises as the API's object


@pytest.mark.parametrize(("status", "kind", "exit_code"), [
    (400, InvalidRequestError, 2), (403, AuthenticationError, 9), (404, NotFoundError, 3),
    (409, ConflictError, 4), (413, InvalidRequestError, 2), (500, ServiceError, 7)])
def test_errors_when_the_api_refuses_then_one_class_per_kind_with_the_cli_exit_code(status, kind, exit_code):
    client = Client("http://127.0.0.1:1", "key", session=Session([Answer(status, {"error": {
        "code": "some_code", "message": "what went wrong"}})]), retries=0)
    with pytest.raises(kind) as refused:
        client.get("j1")
    assert isinstance(refused.value, WhisperqError) and refused.value.exit_code == exit_code
    assert (refused.value.status, refused.value.code, refused.value.message) == (status, "some_code",
                                                                                  "what went wrong")


def test_wait_when_the_job_is_cancelled_then_returns_instead_of_waiting_out_the_timeout():
    session = Session([Answer(200, job("QUEUED")), Answer(200, job("CANCELLED"))])
    seen = []
    done = Client("http://127.0.0.1:1", session=session).wait("j1", timeout_s=60, on_update=seen.append, poll_s=0)
    assert done.status == "CANCELLED" and [j.status for j in seen] == ["QUEUED", "CANCELLED"]


def test_wait_when_it_outlives_the_timeout_then_wait_timeout_naming_the_job():
    session = Session([Answer(200, job("PROCESSING"))] * 3)
    with pytest.raises(WaitTimeout) as late:
        Client("http://127.0.0.1:1", session=session).wait("j1", timeout_s=0, poll_s=0)
    assert late.value.job_id == "j1" and late.value.exit_code == 8 and "keeps running" in late.value.message


def test_list_when_paged_then_iter_jobs_follows_the_cursor():
    session = Session([Answer(200, {"jobs": [job("COMPLETED")], "nextCursor": "c2"}),
                       Answer(200, {"jobs": [job("FAILED")], "nextCursor": None})])
    jobs = list(Client("http://127.0.0.1:1", session=session).iter_jobs("COMPLETED", page_size=1))
    assert [j.status for j in jobs] == ["COMPLETED", "FAILED"] and all(isinstance(j, Job) for j in jobs)
    assert [params for _, _, params in session.sent] == [{"limit": 1, "status": "COMPLETED"},
                                                         {"limit": 1, "status": "COMPLETED", "cursor": "c2"}]


def test_client_when_nothing_listens_then_unreachable_and_from_env_needs_a_url(monkeypatch):
    with pytest.raises(UnreachableError, match="cannot reach the whisperq API"):
        Client("http://127.0.0.1:9", retries=0, timeout_s=2).get("j1")
    monkeypatch.delenv("WHISPERQ_API_URL", raising=False)
    with pytest.raises(UnreachableError, match="WHISPERQ_API_URL"):
        Client.from_env()
