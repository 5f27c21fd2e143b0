"""A small Hub-compatible HTTP server on 127.0.0.1 for push/pull tests (no mocks of huggingface_hub).

It answers what huggingface_hub's client calls for `create_repo`, `upload_folder`/`create_commit` (preupload answers
"regular", so files come inline in the NDJSON commit) and downloads (`HEAD`/`GET /{repo}/resolve/{rev}/{path}` with
`X-Repo-Commit` / `ETag` headers, `EntryNotFound` / `RepoNotFound` error codes), plus model info, tree and
paths-info listings. Repos live in memory; every commit gets a new sha.

It also plays the original Whisper-AT release host: `HubState.release[path]` (e.g. `/s/atq9so6w0qug5ai/tiny.en_ori.pth`)
answers `GET {path}?dl=1` with a 302 redirect to `/dl/...`, which serves the bytes (HTTP ranges supported), as Dropbox
does. `HubState.cut[name] = n` makes the next `n` downloads of a file named `name` (release or Hub) stop half-way and
close the connection. Every request is recorded in `HubState.requests` (`"GET /path?query"`); `count()` counts them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


class HubState:
    def __init__(self):
        self.repos: dict[str, dict] = {}  # "user/name" for models, "datasets/user/name" and "spaces/user/name"
        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.release: dict[str, bytes] = {}  # release-host path (without query) -> file bytes
        self.cut: dict[str, int] = {}  # file name -> how many more downloads of it break off half-way
        self.delay = 0.0  # seconds to wait before sending a release file (to overlap concurrent clients)

    def add_repo(self, repo_id: str, folder) -> None:
        """A model repo holding every file of a local folder (e.g. ../shared/models/whisper-tiny.en)."""
        from pathlib import Path

        files = {path.name: path.read_bytes() for path in sorted(Path(folder).iterdir()) if path.is_file()}
        with self.lock:
            self.repos[repo_id] = {"sha": _sha(repo_id.encode() + b"".join(files.values())), "files": files}

    def count(self, fragment: str, method: str = "GET") -> int:
        """Requests of `method` whose path contains `fragment`."""
        return sum(1 for line in list(self.requests) if line.startswith(method + " ") and fragment in line)


def _sha(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: HubState

    def log_message(self, *args):  # quiet
        pass

    # ----- helpers -----
    def _send(self, code: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, payload, headers=None):
        self._send(code, json.dumps(payload).encode(), headers)

    def _error(self, code: int, error_code: str, message: str):
        self._json(code, {"error": message}, {"X-Error-Code": error_code, "X-Error-Message": message})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _repo(self, repo_id: str):
        with self.state.lock:
            return self.state.repos.get(self._key(repo_id))

    def _key(self, repo_id: str, repo_type: str | None = None) -> str:
        repo_type = repo_type or self.repo_type
        return repo_id if repo_type == "model" else f"{repo_type}s/{repo_id}"

    def _route(self) -> str:
        """The request path with a dataset/space repo's type taken out (into `self.repo_type`): those repos answer
        on the same routes as models (`/api/datasets/{id}/...` -> `/api/models/{id}/...`,
        `/datasets/{id}/resolve/...` -> `/{id}/resolve/...`)."""
        path = unquote(urlparse(self.path).path)
        self.repo_type = "model"
        for kind in ("dataset", "space"):
            for prefix, replacement in ((f"/api/{kind}s/", "/api/models/"), (f"/{kind}s/", "/")):
                if path.startswith(prefix):
                    self.repo_type = kind
                    return replacement + path[len(prefix):]
        return path

    # ----- routes -----
    def do_POST(self):
        self.state.requests.append(f"POST {self.path}")
        path = self._route()
        body = self._body()
        if path == "/api/repos/create":
            payload = json.loads(body)
            repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
            key = self._key(repo_id, payload.get("type") or "model")
            host = f"http://{self.headers['Host']}"
            with self.state.lock:
                if key in self.state.repos:  # as the Hub: 409, with the repo's url (create_repo(exist_ok=True) reads it)
                    message = "You already created this model repo"
                    return self._json(409, {"error": message, "url": f"{host}/{repo_id}"},
                                      {"X-Error-Code": "RepoExists", "X-Error-Message": message})  # fmt: skip
                self.state.repos[key] = {"sha": _sha(key.encode()), "files": {}}
            return self._json(200, {"url": f"{host}/{repo_id}", "name": repo_id, "id": repo_id})
        if path == "/api/validate-yaml":  # README.md metadata: must be valid YAML
            import yaml

            content = json.loads(body).get("content", "")
            front = re.match(r"^---\n(.*?)\n---", content, re.S)
            try:
                yaml.safe_load(front.group(1)) if front else None
            except yaml.YAMLError as error:
                return self._json(400, {"errors": [{"message": str(error)}], "warnings": []},
                                  {"X-Error-Code": "BadRequest"})
            return self._json(200, {"errors": [], "warnings": []})
        match = re.fullmatch(r"/api/models/(.+)/preupload/([^/]+)", path)
        if match:
            if self._repo(match.group(1)) is None:
                return self._error(404, "RepoNotFound", "Repository not found")
            files = json.loads(body)["files"]
            return self._json(
                200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
            )
        match = re.fullmatch(r"/api/models/(.+)/commit/([^/]+)", path)
        if match:
            repo = self._repo(match.group(1))
            if repo is None:
                return self._error(404, "RepoNotFound", "Repository not found")
            files = {}
            for line in body.decode().splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                if item["key"] == "file":
                    value = item["value"]
                    if value.get("encoding") != "base64":
                        return self._error(400, "BadRequest", "only base64 regular files are supported")
                    files[value["path"]] = base64.b64decode(value["content"])
                elif item["key"] in ("lfsFile", "deletedFile", "deletedFolder"):
                    return self._error(400, "BadRequest", f"{item['key']} not supported by the test hub")
            with self.state.lock:
                repo["files"].update(files)
                repo["sha"] = _sha((repo["sha"] + json.dumps(sorted(files))).encode() + b"".join(files.values()))
            host = f"http://{self.headers['Host']}"
            return self._json(
                200,
                {"commitUrl": f"{host}/{match.group(1)}/commit/{repo['sha']}", "commitOid": repo["sha"],
                 "pullRequestUrl": None, "success": True},
            )
        match = re.fullmatch(r"/api/models/(.+)/paths-info/([^/]+)", path)
        if match:
            repo = self._repo(match.group(1))
            if repo is None:
                return self._error(404, "RepoNotFound", "Repository not found")
            wanted = json.loads(body).get("paths", []) if body.startswith(b"{") else []
            return self._json(200, [self._entry(p, d) for p, d in repo["files"].items() if p in wanted])
        return self._error(404, "NotFound", f"no route for POST {path}")

    @staticmethod
    def _entry(path: str, data: bytes) -> dict:
        return {"type": "file", "path": path, "size": len(data), "oid": _sha(data)}

    @staticmethod
    def _tree(files: dict[str, bytes], prefix: str, recursive: bool) -> list[dict]:
        """Entries under folder `prefix`: every file (recursive), or its files and sub-folders (as the Hub lists)."""
        base = f"{prefix}/" if prefix else ""
        entries, folders = [], set()
        for path, data in sorted(files.items()):
            if not path.startswith(base):
                continue
            parts = path[len(base):].split("/")
            for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
                folders.add(base + "/".join(parts[:depth]))
            if recursive or len(parts) == 1:
                entries.append(HubHandler._entry(path, data))
        return [{"type": "directory", "path": p, "oid": _sha(p.encode()), "size": 0} for p in sorted(folders)] + entries

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        ranged = f" [{self.headers['Range']}]" if self.headers.get("Range") else ""
        self.state.requests.append(f"{self.command} {self.path}{ranged}")
        path = self._route()
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)
        if match:
            repo = self._repo(match.group(1))
            if repo is None:
                return self._error(404, "RepoNotFound", "Repository not found")
            return self._json(
                200,
                {"id": match.group(1), "modelId": match.group(1), "sha": repo["sha"], "private": False,
                 "siblings": [{"rfilename": p} for p in sorted(repo["files"])], "tags": []},
            )
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?", path)
        if match:
            repo = self._repo(match.group(1))
            if repo is None:
                return self._error(404, "RepoNotFound", "Repository not found")
            prefix = (match.group(3) or "").strip("/")
            return self._json(200, self._tree(repo["files"], prefix, "recursive=true" in urlparse(self.path).query))
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if match:
            repo = self._repo(match.group(1))
            if repo is None:
                return self._error(404, "RepoNotFound", "Repository not found")
            data = repo["files"].get(match.group(3))
            if data is None:
                return self._json(
                    404, {"error": "Entry not found"},
                    {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found",
                     "X-Repo-Commit": repo["sha"]},
                )
            headers = {"X-Repo-Commit": repo["sha"], "ETag": f'"{_sha(data)}"'}
            return self._send_file(data, match.group(3).rsplit("/", 1)[-1], headers)
        if path.startswith("/s/"):  # the release host: a share link redirects to the file
            if path not in self.state.release:
                return self._send(404, b"<html>not found</html>", content_type="text/html")
            self.send_response(302)
            self.send_header("Location", "/dl/" + path[len("/s/"):] + "?dl=1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if path.startswith("/dl/"):
            data = self.state.release.get("/s/" + path[len("/dl/"):])
            if data is None:
                return self._send(404, b"<html>not found</html>", content_type="text/html")
            if self.state.delay:
                time.sleep(self.state.delay)
            return self._send_file(data, path.rsplit("/", 1)[-1])
        return self._error(404, "NotFound", f"no route for GET {path}")

    def _send_file(self, data: bytes, name: str, headers: dict | None = None):
        """The bytes of a file, honouring `Range: bytes=N-`; cut half-way while `state.cut[name]` > 0."""
        headers = dict(headers or {}, **{"Accept-Ranges": "bytes"})
        start = 0
        ranged = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if ranged:
            start = int(ranged.group(1))
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        with self.state.lock:
            cut = self.command == "GET" and self.state.cut.get(name, 0) > 0
            if cut:
                self.state.cut[name] -= 1
        if not cut:
            return self._send(206 if ranged else 200, body, headers, content_type="application/octet-stream")
        self.send_response(206 if ranged else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)
        return None


def start_hub_server() -> tuple[ThreadingHTTPServer, HubState, str]:
    """Starts the server on a free loopback port in a daemon thread; returns (server, state, endpoint URL)."""
    state = HubState()
    handler = type("BoundHubHandler", (HubHandler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state, f"http://127.0.0.1:{server.server_address[1]}"
