"""``LoopbackHub``: a small in-memory Hugging Face Hub on 127.0.0.1, for tests of push and pull.

``huggingface_hub`` has no offline write target, and the machines that run these tests cannot
reach the real Hub. This stdlib HTTP server answers the few endpoints ``push_to_hub`` and
``from_pretrained(repo_id)`` use, enough for a real round-trip:

* ``POST /api/repos/create``, ``POST /api/validate-yaml``, ``GET /api/whoami-v2``;
* ``POST /api/models/{repo}/preupload/{rev}`` (every file "regular": content comes inline, base64,
  so neither LFS nor Xet is needed) and ``POST /api/models/{repo}/commit/{rev}`` (NDJSON);
* ``GET /api/models/{repo}[/revision/{rev}]``, ``POST .../paths-info/{rev}``, ``GET .../tree/{rev}``;
* ``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` with ``X-Repo-Commit`` and ``ETag``, and
  ``404`` + ``X-Error-Code: EntryNotFound`` for a file the repo does not have.

It also fails on request, for error-path tests: :meth:`LoopbackHub.fail_next_commit` (or
``POST /_loopback/fail-next-commit?status=500&times=1`` from another process) makes the next
``times`` commit requests answer with that status and change nothing. ``huggingface_hub`` retries a
500 five times (with backoff) before it gives up, so a push fails only when ``times`` exceeds that.

The client reads ``HF_ENDPOINT`` when ``huggingface_hub`` is *imported*, so point a client process
at ``hub.url`` before that import (the tests run their client in a subprocess), with
``HF_HUB_OFFLINE=0`` and any token.

Example:

```python
>>> with LoopbackHub() as hub:
...     env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_TOKEN": "hf_loopback"}
...     subprocess.run([sys.executable, "push_and_pull.py"], env=env, check=True)
...     print(hub.files("me/model"))
```
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_USER = "loopback-user"
_REPO = r"(?P<repo>[^/]+/[^/]+?|[^/]+?)"


def _git_sha(data: bytes) -> str:
    """A git-blob-like sha1 of a file (the Hub's ETag for a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class _Repo:
    commits: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)  # (sha, files) oldest first

    def files_at(self, revision: str) -> tuple[str, dict[str, bytes]] | None:
        if not self.commits:
            return None
        if revision in ("main", "HEAD"):
            return self.commits[-1]
        for sha, files in self.commits:
            if sha == revision or (len(revision) >= 7 and sha.startswith(revision)):
                return sha, files
        return None


class LoopbackHub:
    """An in-memory Hub served on ``127.0.0.1``; use as a context manager (or :meth:`start` / :meth:`stop`).

    Args:
        port (`int`, *optional*, defaults to 0): 0 picks a free port.
    """

    def __init__(self, port: int = 0):
        self.repos: dict[str, _Repo] = {}
        self.lock = threading.Lock()
        self.commit_requests = 0
        self.failed_commits = 0
        self._failures: list[int] = []  # statuses of the next commit requests to fail
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._server.hub = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> LoopbackHub:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="loopback-hub")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LoopbackHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ test controls and inspection
    def fail_next_commit(self, status: int = 500, times: int = 1) -> None:
        """The next ``times`` commit requests answer ``status`` and leave the repo as it was."""
        with self.lock:
            self._failures = [status] * times

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """``{path: content}`` of ``repo_id`` at ``revision`` (empty if it has no commit)."""
        repo = self.repos.get(repo_id)
        found = repo.files_at(revision) if repo else None
        return dict(found[1]) if found else {}

    def commits(self, repo_id: str) -> list[str]:
        return [sha for sha, _ in self.repos[repo_id].commits] if repo_id in self.repos else []

    # ------------------------------------------------------------------ operations (called by the handler)
    def create_repo(self, repo_id: str) -> bool:
        with self.lock:
            if repo_id in self.repos:
                return False
            self.repos[repo_id] = _Repo()
            return True

    def commit(self, repo_id: str, body: bytes) -> tuple[int, dict]:
        with self.lock:
            self.commit_requests += 1
            if self._failures:
                status = self._failures.pop()
                self.failed_commits += 1
                return status, {"error": f"Internal Error (loopback hub: injected failure {status})"}
            repo = self.repos.get(repo_id)
            if repo is None:
                return 404, {"error": "Repository not found"}
            files = dict(repo.commits[-1][1]) if repo.commits else {}
            summary = ""
            for line in body.splitlines():
                if not line.strip():
                    continue
                item = json.loads(line)
                key, value = item["key"], item["value"]
                if key == "header":
                    summary = value.get("summary", "")
                elif key == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif key == "deletedFile":
                    files.pop(value["path"], None)
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    files = {p: d for p, d in files.items() if not p.startswith(prefix)}
                else:  # lfsFile and anything newer: this hub only takes inline ("regular") uploads
                    return 400, {"error": f"loopback hub: unsupported commit operation {key!r}"}
            digest = hashlib.sha1()
            digest.update(f"{len(repo.commits)}:{summary}".encode())
            for path in sorted(files):
                digest.update(path.encode() + _git_sha(files[path]).encode())
            sha = digest.hexdigest()
            repo.commits.append((sha, files))
            return 200, {
                "commitUrl": f"{self.url}/{repo_id}/commit/{sha}",
                "commitOid": sha,
                "pullRequestUrl": None,
            }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def log_message(self, *args) -> None:  # quiet: tests read the hub's state, not its log
        pass

    @property
    def hub(self) -> LoopbackHub:
        return self.server.hub

    # ------------------------------------------------------------------ replies
    def _send(self, status: int, body=b"", content_type="application/json", headers=None, head=False) -> None:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, head: bool = False) -> None:
        self._send(
            status, {"error": message}, headers={"X-Error-Code": code, "X-Error-Message": message}, head=head
        )

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _path(self) -> tuple[str, dict]:
        parts = urlsplit(self.path)
        return unquote(parts.path), parse_qs(parts.query)

    # ------------------------------------------------------------------ POST
    def do_POST(self) -> None:
        path, query = self._path()
        body = self._body()
        if path == "/_loopback/fail-next-commit":
            self.hub.fail_next_commit(int(query.get("status", ["500"])[0]), int(query.get("times", ["1"])[0]))
            return self._send(200, {"ok": True})
        if path == "/api/repos/create":
            data = json.loads(body or b"{}")
            name = data["name"]
            repo_id = name if "/" in name else f"{data.get('organization') or DEFAULT_USER}/{name}"
            url = f"{self.hub.url}/{repo_id}"
            if not self.hub.create_repo(repo_id):
                return self._send(409, {"error": "You already created this model repo", "url": url})
            return self._send(200, {"url": url, "name": repo_id})
        if path == "/api/validate-yaml":
            return self._send(200, {"errors": [], "warnings": []})
        match = re.fullmatch(rf"/api/models/{_REPO}/(?P<op>preupload|commit|paths-info)/(?P<rev>.+)", path)
        if match:
            repo_id, op = match["repo"], match["op"]
            if repo_id not in self.hub.repos:
                return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            if op == "preupload":
                files = json.loads(body)["files"]
                return self._send(
                    200,
                    {
                        "files": [
                            {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
                        ]
                    },
                )
            if op == "commit":
                status, reply = self.hub.commit(repo_id, body)
                if status != 200:
                    return self._error(
                        status, "InternalError" if status >= 500 else "BadRequest", reply["error"]
                    )
                return self._send(200, reply)
            found = self.hub.repos[repo_id].files_at(match["rev"])
            files = found[1] if found else {}
            wanted = (
                json.loads(body or b"{}").get("paths", [])
                if body.startswith(b"{")
                else parse_qs(body.decode()).get("paths", [])
            )
            return self._send(200, [_entry(p, files[p]) for p in wanted if p in files])
        return self._error(404, "NotFound", f"loopback hub: no POST route for {path}")

    # ------------------------------------------------------------------ GET / HEAD
    def _get(self, head: bool) -> None:
        path, _ = self._path()
        if path == "/api/whoami-v2":
            return self._send(
                200,
                {"type": "user", "name": DEFAULT_USER, "auth": {"accessToken": {"role": "write"}}},
                head=head,
            )
        match = re.fullmatch(rf"/api/models/{_REPO}(?:/revision/(?P<rev>[^/]+))?", path)
        if match:
            return self._model_info(match["repo"], match["rev"] or "main", head)
        match = re.fullmatch(rf"/api/models/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<sub>.*))?", path)
        if match:
            found = self._revision(match["repo"], match["rev"], head)
            if found:
                prefix = (match["sub"] or "").strip("/")
                entries = [
                    _entry(p, d)
                    for p, d in sorted(found[1].items())
                    if not prefix or p.startswith(prefix + "/")
                ]
                self._send(200, entries, head=head)
            return None
        match = re.fullmatch(rf"/{_REPO}/resolve/(?P<rev>[^/]+)/(?P<file>.+)", path)
        if match:
            found = self._revision(match["repo"], match["rev"], head)
            if not found:
                return None
            sha, files = found
            if match["file"] not in files:
                return self._error(
                    404, "EntryNotFound", f"{match['file']} does not exist on {match['rev']}", head
                )
            data = files[match["file"]]
            headers = {"X-Repo-Commit": sha, "ETag": f'"{_git_sha(data)}"'}
            return self._send(200, data, "application/octet-stream", headers, head)
        return self._error(404, "NotFound", f"loopback hub: no GET route for {path}", head)

    def _revision(self, repo_id: str, revision: str, head: bool):
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found", head)
            return None
        found = repo.files_at(revision)
        if found is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
        return found

    def _model_info(self, repo_id: str, revision: str, head: bool) -> None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", f"Repository {repo_id} not found", head)
        found = repo.files_at(revision) if repo.commits else ("0" * 40, {})
        if found is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
        sha, files = found
        info = {
            "id": repo_id,
            "modelId": repo_id,
            "sha": sha,
            "private": False,
            "siblings": [{"rfilename": p, "size": len(d)} for p, d in sorted(files.items())],
            "tags": [],
        }
        return self._send(200, info, head=head)

    def do_GET(self) -> None:
        self._get(head=False)

    def do_HEAD(self) -> None:
        self._get(head=True)


def _entry(path: str, data: bytes) -> dict:
    return {"type": "file", "path": path, "size": len(data), "oid": _git_sha(data)}


__all__ = ["DEFAULT_USER", "LoopbackHub"]
