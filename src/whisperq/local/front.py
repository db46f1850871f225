"""A small HTTP front that turns requests into API Gateway (REST) proxy events for the API handler,
as API Gateway does in AWS. Bound to 127.0.0.1 only."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from whisperq.api_handler.authorizer import api_key_of
from whisperq.core.openai_compat import error_body
from whisperq.local import xray
from whisperq.local.containers import Throttled
from whisperq.local.lambda_context import LocalLambdaContext

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's limit
BODY_TIMEOUT_S = 10  # a client on loopback that sends nothing for this long has stalled

# The template's BinaryMediaTypes: bodies API Gateway hands to the function base64-encoded.
BINARY_MEDIA_TYPES = frozenset({"multipart/form-data"})

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def to_proxy_event(method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes,
                   source_ip: str) -> dict[str, Any]:
    """The REST API proxy-integration event for one HTTP request."""
    parts = urlsplit(raw_path)
    path = unquote(parts.path) or "/"
    query = parse_qs(parts.query, keep_blank_values=True)
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        multi_headers.setdefault(name, []).append(value)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    # Base64 for the template's binary media types, and for any body that is not UTF-8 text.
    is_base64 = content_type.lower().split(";")[0].strip() in BINARY_MEDIA_TYPES
    text_body: str | None = None
    if body and not is_base64:
        try:
            text_body = body.decode("utf-8")
        except UnicodeDecodeError:
            is_base64 = True
    if body and is_base64:
        text_body = base64.b64encode(body).decode("ascii")
    now_ms = int(time.time() * 1000)
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {k: v[-1] for k, v in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "stage": "local",
            "resourcePath": path,
            "path": f"/local{path}",
            "httpMethod": method,
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": now_ms,
            "protocol": "HTTP/1.1",
            "identity": {"sourceIp": source_ip, "userAgent": multi_headers.get("User-Agent", [""])[-1]},
        },
        "body": text_body,
        "isBase64Encoded": is_base64,
    }


def error_json(code: str, message: str) -> str:
    """API Gateway's own refusals, as the template's GatewayResponses shape them: the API's one error
    shape (whisperq's code and message, OpenAI's type and param)."""
    return error_body(message, "invalid_request_error", code)


# Routes API Gateway serves without a key (Auth.ApiKeyRequired: false on the event in the template).
OPEN_ROUTES = frozenset({("GET", "/health"), ("GET", "/"), ("GET", "/app"), ("GET", "/app.js")})


def key_id(api_key: str) -> str:
    """A stable, non-secret id for a key, as API Gateway gives each key an id."""
    return "local-" + hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:12]


class ApiFront:
    """Serves one Lambda proxy handler over HTTP on 127.0.0.1, checking API keys as API Gateway does
    (a request without a valid x-api-key never reaches the function)."""

    def __init__(self, handler: Handler, port: int = 0, function_name: str = "whisperq-api",
                 api_keys: list[str] | dict[str, str] | None = None):
        """`api_keys`: the keys API Gateway would accept, each with its key id (or a list, ids made up)."""
        self._handler = handler
        self._function_name = function_name
        self._keys = dict(api_keys) if isinstance(api_keys, dict) else {key: key_id(key) for key in (api_keys or [])}
        # One request at a time through the handler, as one Lambda container would take them.
        self._invoke_lock = threading.Lock()
        self._daemon_address = os.environ.get(xray.DAEMON_ADDRESS_ENV)
        # Each front's requests reach it through a handler class of its own.
        handler_class = type("RequestHandler", (_Requests,), {"front": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler_class)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    def authorise(self, event: dict[str, Any], api_key: str | None) -> bool:
        """Put the key's id in the event as API Gateway does; False when a key is needed and wrong."""
        if (event["httpMethod"], event["path"]) in OPEN_ROUTES:
            return True
        if not api_key or api_key not in self._keys:
            return False
        event["requestContext"]["identity"].update({"apiKey": api_key, "apiKeyId": self._keys[api_key]})
        return True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def _call(self, event: dict[str, Any]) -> dict[str, Any]:
        if getattr(self._handler, "runs_invocations", False):
            return self._handler(event, None)  # containers of their own, each tracing its invocations
        context = LocalLambdaContext(function_name=self._function_name, timeout_s=29)
        with self._invoke_lock, xray.Invocation(self._function_name, self._daemon_address) as invocation:
            result = self._handler(event, context)
            invocation.error = int(result.get("statusCode", 200)) >= 400
        return result

    def invoke(self, event: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        try:
            result = self._call(event)
        except Throttled:
            return 429, {"Content-Type": "application/json"}, error_json(
                "throttled", "too many requests; retry with backoff").encode()
        except Exception:  # noqa: BLE001 - API Gateway answers 502 when the function itself fails
            return 502, {"Content-Type": "application/json"}, error_json(
                "bad_gateway", "the API function failed").encode()
        headers = dict(result.get("headers") or {})
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(values)
        raw = result.get("body") or ""
        payload = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode("utf-8")
        return int(result.get("statusCode", 200)), headers, payload

    def start(self) -> ApiFront:
        self._thread = threading.Thread(target=self._server.serve_forever, name="api-front", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)


class _Requests(BaseHTTPRequestHandler):
    """The HTTP side of a front: each request becomes an API Gateway proxy event for its handler."""

    front: Any  # the ApiFront whose requests these are (set by a subclass per front)

    server_version = "whisperq-local-front"
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle's algorithm on, the body waits for
    # the client's delayed ACK, 40 ms added to every answer on a kept-alive connection.
    disable_nagle_algorithm = True
    # A client that announces more body than it sends (or stalls) is dropped after this, as API
    # Gateway drops it, instead of holding a thread of the front for ever.
    timeout = BODY_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _serve(self) -> None:
        raw = self.headers.get("Content-Length") or "0"
        if not (raw.isascii() and raw.isdigit()):
            self.close_connection = True
            message = f"Content-Length must be a whole number of bytes, not {raw[:20]!r}"
            self._reply(400, {"Content-Type": "application/json"},
                        error_json("invalid_request", message).encode())
            return
        length = int(raw)
        if length > MAX_PAYLOAD_BYTES:
            self._reply(413, {"Content-Type": "application/json"}, error_json(
                "payload_too_large", "request bodies are limited to 10 MB: upload large audio with "
                                     "POST /jobs and its pre-signed form").encode())
            return
        body = self.rfile.read(length) if length else b""
        event = to_proxy_event(self.command, self.path, list(self.headers.items()), body,
                               self.client_address[0])
        if not self.front.authorise(event, api_key_of(self.headers)):
            self._reply(403, {"Content-Type": "application/json"}, error_json(
                "forbidden", "a valid API key is required (x-api-key or Authorization: Bearer)").encode())
            return
        status, headers, payload = self.front.invoke(event)
        self._reply(status, headers, payload)

    def _reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def __getattr__(self, name: str) -> Any:
        # Every method reaches the handler (API Gateway forwards them; the handler answers 405),
        # rather than http.server's HTML 501 for the ones it does not know.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)
