"""The one guarded way out (transcriber/egress.py), against real sockets on 127.0.0.1: a resolver that
rebinds, a receiver that drips, a redirect to loopback, and the addresses IPv6 carries IPv4 in."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time

import pytest

from whisperq.core.addresses import is_private_host, is_public
from whisperq.transcriber.egress import EgressFailed, EgressRefused, GuardedClient

PUBLIC = "93.184.216.34"  # a global address; no test connects to it


def ok(handler):
    handler.send_response(200)
    handler.send_header("Content-Length", "2")
    handler.end_headers()
    handler.wfile.write(b"ok")


def test_rebinding_resolver_when_it_answers_public_then_loopback_then_only_the_checked_address_is_dialled(server):
    """The probe's attack: a TTL-0 name that resolves to a public address for the check and to 127.0.0.1
    for the connection. The client resolves once and dials what it checked."""
    local = server(ok)
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    asked, dialled = [], []

    def resolver(host, port):
        asked.append(host)
        return next(answers)

    def connect(address, port, timeout_s):
        dialled.append((address, port))
        raise ConnectionRefusedError("no route (the test never leaves the machine)")

    client = GuardedClient(resolver=resolver, connect=connect)
    with pytest.raises(EgressFailed):
        client.request("POST", f"http://rebind.example:{local.port}/hook", b"{}")
    assert asked == ["rebind.example"] and dialled == [(PUBLIC, local.port)]
    assert local.hits == 0


def test_name_when_any_address_it_resolves_to_is_private_then_refused_before_connecting():
    client = GuardedClient(resolver=lambda host, port: [PUBLIC, "::ffff:169.254.169.254"],
                           connect=lambda *a: pytest.fail("must not connect"))
    with pytest.raises(EgressRefused, match="non-public address"):
        client.request("POST", "https://hooks.example.com/x", b"{}")


def test_redirect_when_it_points_at_loopback_then_refused(server):
    redirector = server(lambda h: (h.send_response(302), h.send_header("Location", "http://127.0.0.1:9001/"),
                                   h.send_header("Content-Length", "0"), h.end_headers()))
    # "hooks.example.com" is public; the test's connect takes the public address to the local redirector.
    client = GuardedClient(resolver=lambda host, port: [PUBLIC],
                           connect=lambda address, port, t: socket.create_connection(("127.0.0.1", port), t))
    with pytest.raises(EgressRefused, match="127.0.0.1"):
        client.request("GET", f"http://hooks.example.com:{redirector.port}/a", max_redirects=3)
    assert redirector.hits == 1
    # Without redirects asked for, the 302 is the answer.
    assert client.request("GET", f"http://hooks.example.com:{redirector.port}/a").status == 302


@pytest.mark.parametrize("what", ["body", "headers"])
def test_receiver_when_it_drips_then_cut_off_at_the_deadline_not_per_read(server, what):
    """Headers then a byte every 0.3 s (or the status line itself a byte at a time): each read is quick,
    the exchange never ends. The deadline is kept by the clock."""
    def drip(handler):
        if what == "headers":
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(0.3)
            return
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        for _ in range(100):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(0.3)

    dripper = server(drip)
    started = time.monotonic()
    with pytest.raises(EgressFailed, match="deadline"):
        GuardedClient(allow_private=True).request("POST", f"http://127.0.0.1:{dripper.port}/hook", b"{}",
                                                  deadline_s=1.5, max_bytes=4096)
    assert time.monotonic() - started < 4


def test_answer_when_within_the_deadline_then_status_headers_and_at_most_max_bytes(server):
    big = server(lambda h: (h.send_response(201), h.send_header("Content-Length", "100000"), h.end_headers(),
                            h.wfile.write(b"y" * 100000)))
    reply = GuardedClient(allow_private=True).request("POST", f"http://127.0.0.1:{big.port}/", b"{}", max_bytes=1000)
    assert reply.status == 201 and len(reply.body) == 1000 and reply.headers["content-length"] == "100000"


def test_loopback_when_private_is_not_allowed_then_refused_before_resolving():
    client = GuardedClient(resolver=lambda *a: pytest.fail("must not resolve"))
    for url in ("http://127.0.0.1/", "http://localhost:8080/", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
                "ftp://example.com/"):
        with pytest.raises(EgressRefused):
            client.request("POST", url, b"{}")


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.0.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",
    "::1", "::", "fe80::1", "fc00::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.1.2.3",  # IPv4-mapped
    "::127.0.0.1", "::10.0.0.1",  # IPv4-compatible
    "2002:7f00:1::", "2002:a9fe:a9fe::",  # 6to4 of 127.0.0.1 and 169.254.169.254
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",  # NAT64
])
def test_address_when_private_or_wrapping_a_private_ipv4_then_not_public(address):
    assert not is_public(ipaddress.ip_address(address))
    assert is_private_host(address) and is_private_host(f"[{address}]")


@pytest.mark.parametrize("address", ["8.8.8.8", "2001:4860:4860::8888", "2002:808:808::"])
def test_address_when_global_then_public(address):
    assert is_public(ipaddress.ip_address(address)) and not is_private_host(address)


def test_tls_handshake_when_the_receiver_drips_it_then_cut_off_at_the_deadline():
    """Over https the deadline must hold too: a record header that promises 16 KB, then a byte at a time.
    Each read is quick; only the clock ends it (wrapping a socket in TLS detaches the plain one)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def drip():
        conn, _ = listener.accept()
        with conn:
            try:
                conn.sendall(b"\x16\x03\x03\x40\x00")
                for _ in range(100):
                    conn.sendall(b"\x00")
                    time.sleep(0.3)
            except OSError:
                return

    threading.Thread(target=drip, daemon=True).start()
    started = time.monotonic()
    try:
        with pytest.raises(EgressFailed, match="deadline"):
            GuardedClient(allow_private=True).request("POST", f"https://localhost:{port}/hook", b"{}",
                                                      deadline_s=1.5)
    finally:
        listener.close()
    assert time.monotonic() - started < 4


def test_name_when_its_resolver_stalls_then_the_deadline_still_holds():
    def stalls(host, port):
        time.sleep(5)
        return [PUBLIC]

    started = time.monotonic()
    with pytest.raises(EgressFailed, match="did not resolve"):
        GuardedClient(resolver=stalls).request("POST", "https://slow-dns.example/x", b"{}", deadline_s=1)
    assert time.monotonic() - started < 2


def test_first_address_when_unreachable_then_the_next_checked_one_is_dialled(server):
    local = server(ok)
    dialled = []

    def connect(address, port, timeout_s):
        dialled.append(address)
        if address == "2001:4860:4860::8888":
            raise OSError("network unreachable")
        return socket.create_connection(("127.0.0.1", port), timeout_s)

    client = GuardedClient(resolver=lambda host, port: ["2001:4860:4860::8888", PUBLIC], connect=connect)
    assert client.request("POST", f"http://dual.example:{local.port}/", b"{}").status == 200
    assert dialled == ["2001:4860:4860::8888", PUBLIC]
