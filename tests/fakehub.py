"""A model hub on 127.0.0.1 that answers the file API the `huggingface_hub` client uses to download a
repository (repository info, its file tree, HEAD and GET of each file), for files on local disk: the
real download code runs against it with HF_ENDPOINT pointed here, and nothing leaves the machine."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

# Files the hub keeps in git LFS (listed with their sha256); the rest are listed by their git blob id.
LFS_SUFFIXES = (".bin",)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


class FakeHub:
    """Serves `repos` ({"owner/name": directory}) at one commit each. `corrupt` names files served
    with one byte changed (their listed checksums stay those of the true content)."""

    def __init__(self, repos: dict[str, Path], corrupt: set[str] | None = None):
        self.repos = {repo: {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}
                      for repo, path in repos.items()}
        self.commits = {repo: hashlib.sha1(repo.encode(), usedforsecurity=False).hexdigest() for repo in repos}
        self.corrupt = corrupt or set()
        self.requests: list[str] = []
        handler = type("Handler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def tree(self, repo: str) -> list[dict]:
        entries = []
        for name, data in self.repos[repo].items():
            entry = {"type": "file", "path": name, "size": len(data), "oid": _blob_id(data)}
            if name.endswith(LFS_SUFFIXES):
                entry["lfs"] = {"oid": _sha256(data), "size": len(data), "pointerSize": 134}
            entries.append(entry)
        return entries

    def content(self, repo: str, name: str) -> bytes:
        data = self.repos[repo][name]
        if name in self.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        return data


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _json(self, body: object, status: int = 200) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _route(self) -> None:
        path = unquote(urlsplit(self.path).path)
        self.hub.requests.append(f"{self.command} {path}")
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo = "/".join(parts[2:4])
            if repo not in self.hub.repos:
                self._json({"error": "Repository Not Found"}, 404)
            elif len(parts) == 4 or parts[4] == "revision":
                self._json({"id": repo, "sha": self.hub.commits[repo],
                            "siblings": [{"rfilename": name} for name in self.hub.repos[repo]]})
            elif parts[4] == "tree":
                self._json(self.hub.tree(repo))
            else:
                self._json({"error": "not found"}, 404)
            return
        if len(parts) >= 5 and parts[2] == "resolve":
            repo, name = "/".join(parts[:2]), "/".join(parts[4:])
            if repo not in self.hub.repos or name not in self.hub.repos[repo]:
                self._json({"error": "Entry not found"}, 404)
                return
            data = self.hub.content(repo, name)
            true = self.hub.repos[repo][name]
            etag = _sha256(true) if name.endswith(LFS_SUFFIXES) else _blob_id(true)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("ETag", f'"{etag}"')
            self.send_header("X-Repo-Commit", self.hub.commits[repo])
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            return
        self._json({"error": "not found"}, 404)

    do_GET = do_HEAD = _route
