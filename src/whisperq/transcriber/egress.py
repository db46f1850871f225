"""The one guarded way out: every connection the service opens to a URL a client gave (a job's callback
now, audio by URL next) goes through `GuardedClient`.

- The host is resolved once, and every address it resolves to must be public (core.addresses: IPv4 inside
  IPv6 unwrapped, multicast and unspecified refused); the connection goes to the checked address, so a
  name that answers differently the second time (DNS rebinding) changes nothing. The Host header and TLS
  SNI (and the certificate check) keep the name.
- A redirect is followed only when asked, a few at most, each target checked as the first.
- One deadline for the whole exchange (connect, TLS, request, status, headers, body), kept by the wall
  clock: a receiver that drips a byte now and then is cut off when it comes, not after each read's
  timeout. At most `max_bytes` of the body are read.
- A body can be streamed into a file (`sink`, audio by URL): a Content-Length over `max_bytes` is refused
  before a byte is read, the count is kept while streaming (a server that sends more than it announced, or
  more than `max_bytes` without announcing, is cut off at the limit), and a body that ends early fails.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

from whisperq.core.addresses import is_private_host, is_public
from whisperq.core.errors import WhisperqError

Resolver = Callable[[str, int], list[str]]  # host, port -> addresses
REDIRECTS = (301, 302, 303, 307, 308)
ERROR_BODY_BYTES = 64 * 1024  # what is read of an answer that is not the body a streaming request asked for


class EgressRefused(WhisperqError):
    """The URL leads somewhere the service may not connect to (a private address, a bad scheme)."""

    code = "egress_refused"


class EgressFailed(WhisperqError):
    """The connection, or the exchange, failed (refused, reset, TLS, past its deadline)."""

    code = "egress_failed"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str  # where it came from in the end (after redirects)


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise EgressFailed(f"cannot resolve {host}: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def connect_to(address: str, port: int, timeout_s: float) -> socket.socket:
    return socket.create_connection((address, port), timeout=timeout_s)


class _Pinned(http.client.HTTPConnection):
    """An HTTP connection to a checked address, under the URL's host name."""

    def __init__(self, host: str, port: int, addresses: list[str], deadline: float,
                 connect: Callable[[str, int, float], socket.socket], tls: ssl.SSLContext | None):
        super().__init__(host, port, timeout=max(0.001, deadline - time.monotonic()))
        self._addresses, self._deadline, self._connect, self._tls = addresses, deadline, connect, tls
        # The socket the deadline shuts (the TLS one, once wrapped: wrapping detaches the plain one); kept
        # after http.client lets go of it (a response that closes the connection).
        self.raw: socket.socket | None = None

    def connect(self) -> None:
        """The checked addresses in turn (as create_connection does), within the deadline; then TLS."""
        failure: OSError = OSError("no address to connect to")
        for address in self._addresses:
            left = self._deadline - time.monotonic()
            if left <= 0:
                break
            try:
                sock = self._connect(address, self.port, left)
                break
            except OSError as exc:
                failure = exc
        else:
            raise failure
        if self._tls is None:
            self.raw = self.sock = sock
            return
        wrapped = self._tls.wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
        self.raw = self.sock = wrapped
        wrapped.do_handshake()  # under the deadline's timer too


class GuardedClient:
    """See the module docstring. `resolver` and `connect` are the seams a test drives (a resolver that
    rebinds; a connect that records where it was sent)."""

    def __init__(self, allow_private: bool = False, resolver: Resolver = system_resolver,
                 connect: Callable[[str, int, float], socket.socket] = connect_to,
                 tls: ssl.SSLContext | None = None):
        self.allow_private = allow_private
        self.resolver = resolver
        self.connect = connect
        self.tls = tls or ssl.create_default_context()

    def request(self, method: str, url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None,
                deadline_s: float = 10.0, max_bytes: int = 64 * 1024, max_redirects: int = 0,
                sink: IO[bytes] | None = None) -> Reply:
        """One exchange (following up to `max_redirects` redirects). With `sink`, a 2xx answer's body is
        written there (the reply's body is then empty) and the connection is read to its end."""
        deadline = time.monotonic() + deadline_s
        for _ in range(max_redirects + 1):
            reply = self._once(method, url, body, headers or {}, deadline, max_bytes, sink)
            location = reply.headers.get("location")
            if reply.status not in REDIRECTS or not location or max_redirects == 0:
                return reply
            target = urljoin(url, location)
            if urlsplit(url).scheme == "https" and urlsplit(target).scheme != "https":
                raise EgressRefused(f"a redirect from https to {target[:100]!r} is not followed")
            if urlsplit(target).hostname != urlsplit(url).hostname:
                # What was meant for one host (a signature, credentials) does not go to another.
                headers = {k: v for k, v in (headers or {}).items() if k.lower().startswith("content-")}
            url = target
            if reply.status == 303 or (reply.status in (301, 302) and method == "POST"):
                method, body = "GET", None
        raise EgressRefused(f"more than {max_redirects} redirects")

    def check(self, url: str, deadline: float | None = None) -> tuple[str, int, list[str]]:
        """The URL's host, port and the addresses it may be reached at; EgressRefused when it may not.
        The name must resolve by `deadline` (time.monotonic(); default: 10 s from now)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EgressRefused(f"only http(s) URLs with a host are followed, not {url[:100]!r}")
        host = parts.hostname
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            host.encode("idna")  # a name no resolver takes ("a..example.com") is refused here, not retried
        except (ValueError, UnicodeError):
            raise EgressRefused(f"{url[:100]!r} has an invalid host or port") from None
        if not self.allow_private and is_private_host(host):
            raise EgressRefused(f"{host} is a private, loopback or link-local address")
        addresses = self._resolve(host, port, deadline if deadline is not None else time.monotonic() + 10.0)
        if not addresses:
            raise EgressFailed(f"{host} resolves to no address")
        if not self.allow_private:
            refused = [a for a in addresses if not is_public(ipaddress.ip_address(a.split("%")[0]))]
            if refused:
                raise EgressRefused(f"{host} resolves to a non-public address ({refused[0]})")
        return host, port, addresses

    def _resolve(self, host: str, port: int, deadline: float) -> list[str]:
        """The resolver's answer, within the deadline: a name server that stalls does not hold the attempt."""
        answer: list[Any] = []

        def ask() -> None:
            try:
                answer.append(self.resolver(host, port))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                answer.append(exc)

        thread = threading.Thread(target=ask, daemon=True, name="whisperq-resolve")
        thread.start()
        thread.join(max(0.0, deadline - time.monotonic()))
        if not answer:
            raise EgressFailed(f"{host} did not resolve before the deadline")
        if isinstance(answer[0], BaseException):
            raise answer[0]
        return list(answer[0])

    def _once(self, method: str, url: str, body: bytes | None, headers: Mapping[str, str], deadline: float,
              max_bytes: int, sink: IO[bytes] | None = None) -> Reply:
        host, port, addresses = self.check(url, deadline)
        parts = urlsplit(url)
        left = deadline - time.monotonic()
        if left <= 0:
            raise EgressFailed("the deadline passed before the request was sent")
        connection = _Pinned(host, port, addresses, deadline, self.connect,
                             self.tls if parts.scheme == "https" else None)
        # The deadline, kept by the clock: whatever the connection is blocked on when it comes, it ends.
        timer = threading.Timer(left, _cut, (connection,))
        timer.daemon = True
        timer.start()
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            # Streaming reads to the end of the connection: the server closes it after the body.
            connection.request(method, path, body=body,
                               headers={**headers, "Connection": "close"} if sink is not None else dict(headers))
            response = connection.getresponse()
            if sink is not None and 200 <= response.status < 300:
                _stream(response, sink, max_bytes)
                data = b""
            else:  # an answer that is not the body asked for: its first bytes say enough
                data = response.read(min(max_bytes, ERROR_BODY_BYTES) if sink is not None else max_bytes)
            reply_headers = {k.lower(): v for k, v in response.getheaders()}
            if time.monotonic() >= deadline:
                raise EgressFailed("no complete answer before the deadline")
            return Reply(response.status, reply_headers, data, url)
        except EgressRefused:
            raise
        except http.client.InvalidURL as exc:  # spaces or control characters in the path
            raise EgressRefused(f"{url[:100]!r} is not a URL that can be requested: {exc}") from exc
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if time.monotonic() >= deadline:
                raise EgressFailed("no complete answer before the deadline") from exc
            raise EgressFailed(f"{type(exc).__name__}: {exc}") from exc
        finally:
            timer.cancel()
            connection.close()


def _stream(response: http.client.HTTPResponse, sink: IO[bytes], max_bytes: int) -> int:
    """Copy a response's body into `sink`, keeping count; the bytes written."""
    announced = response.length  # None: chunked, or no Content-Length
    if announced is not None and announced > max_bytes:
        raise EgressRefused(f"the body is {announced} bytes (its Content-Length), over the limit of {max_bytes}")
    if announced is not None:
        # Read on past what was announced, to the end of the connection: a body longer than its
        # Content-Length is refused, not cut to the announced size and taken as whole.
        response.length = None
    total = 0
    while True:
        block = response.read(min(1 << 16, max_bytes + 1 - total))
        if not block:
            break
        total += len(block)
        if total > max_bytes:
            raise EgressRefused(f"the body is larger than the limit of {max_bytes} bytes; the fetch was stopped there")
        if announced is not None and total > announced:
            raise EgressRefused(f"the body is longer than the {announced} bytes its Content-Length announced")
        sink.write(block)
    if announced is not None and total < announced:
        raise EgressFailed(f"the body ended after {total} of the {announced} bytes announced")
    return total


def _cut(connection: _Pinned) -> None:
    sock = connection.raw
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
