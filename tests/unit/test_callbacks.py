import pytest

from whisperq.core.callbacks import sign, validate_callback_url, verify
from whisperq.core.errors import InvalidRequest


@pytest.mark.parametrize("url", ["https://hooks.example.com/whisperq", "http://example.org:8080/cb?x=1"])
def test_validate_when_public_http_url_then_accepted(url):
    assert validate_callback_url(url, allow_private=False) == url


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9000/", "http://localhost/x", "http://10.1.2.3/", "http://192.168.0.5/",
            "http://169.254.169.254/latest/meta-data", "http://[::1]:8080/", "http://172.16.0.1/",
            "http://api.localhost/"],
)
def test_validate_when_private_or_loopback_then_refused_in_aws_mode(url):
    with pytest.raises(InvalidRequest, match="private"):
        validate_callback_url(url, allow_private=False)
    assert validate_callback_url(url, allow_private=True) == url


def test_signature_when_body_or_timestamp_changes_then_does_not_verify():
    signature = sign("k", "1764034800", b'{"a":1}')
    assert signature.startswith("sha256=") and verify("k", "1764034800", b'{"a":1}', signature)
    assert not verify("k", "1764034801", b'{"a":1}', signature)
    assert not verify("k", "1764034800", b'{"a":2}', signature)
