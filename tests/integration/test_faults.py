"""Fault injection's AWS errors on real calls to moto: what a caller sees, and that an error "after"
the call means the call really happened (the ambiguous case retries must be safe for)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from whisperq.aws.clients import Clients
from whisperq.aws.errors import is_retryable
from whisperq.faults import FaultSpec, Injector


def test_aws_errors_when_every_call_faults_then_each_error_is_retryable_and_after_means_done(stack):
    injector = Injector(FaultSpec(aws_errors=1.0, seed=4))
    clients = Clients(stack.settings, customize=injector.install_aws_errors)
    kinds, written_despite_error = set(), 0
    for index in range(40):
        key = f"audio/fault-{index}.txt"
        with pytest.raises(Exception) as raised:  # noqa: PT011 - any of the four injected kinds
            clients.s3.put_object(Bucket=stack.settings.bucket, Key=key, Body=b"x")
        error = raised.value
        kinds.add(error.response["Error"]["Code"] if isinstance(error, ClientError) else type(error).__name__)
        assert is_retryable(error), error
        if stack.blobs.head(key) is not None:
            written_despite_error += 1
    assert kinds == {"ThrottlingException", "EndpointConnectionError", "InternalError", "ReadTimeoutError"}
    # Half the faults strike after the call was carried out: the object is there despite the error.
    assert 5 <= written_despite_error <= 35
    assert injector.injected["aws-before"] + injector.injected["aws-after"] == 40


def test_aws_errors_when_off_then_no_hooks_and_calls_succeed(stack):
    injector = Injector(FaultSpec())
    clients = Clients(stack.settings, customize=injector.install_aws_errors)
    clients.s3.put_object(Bucket=stack.settings.bucket, Key="audio/fine.txt", Body=b"x")
    assert stack.blobs.head("audio/fine.txt") is not None and injector.injected == {}
