"""A loopback server for the GitHub endpoints costgate uses, with GitHub's response shapes and headers."""
from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class FakeGitHub:
    """Issue comments (list with Link pagination, create, update, delete) and GraphQL minimizeComment.

    `faults` holds (status, headers, body) answers used, in order, before normal handling.
    """

    def __init__(self, repo: str = "acme/app", pr: int = 7) -> None:
        self.repo, self.pr = repo, pr
        self.comments: list[dict[str, Any]] = []
        self.minimized: list[str] = []
        self.faults: deque[tuple[int, dict[str, str], Any]] = deque()
        self.log: list[tuple[str, str, dict[str, str]]] = []
        self.next_id = 1000
        self.user_login: str | None = None  # GET /user: None answers 403 as it does for the Actions token
        self.next_origin: str | None = None  # serve Link: rel="next" on this origin instead of our own
        self.redirect: tuple[int, str] | None = None  # answer every request with this redirect
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> Any:
                length = int(self.headers.get("Content-Length", 0))
                return json.loads(self.rfile.read(length)) if length else None

            def _answer(self, status: int, payload: Any = None, headers: dict[str, str] | None = None) -> None:
                raw = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                headers = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4999", **(headers or {})}
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

            def _handle(self, method: str) -> None:
                owner.log.append((method, self.path, dict(self.headers)))
                body = self._body() if method in ("POST", "PATCH") else None
                if owner.faults:
                    status, headers, payload = owner.faults.popleft()
                    return self._answer(status, payload, headers)
                url = urlparse(self.path)
                if owner.redirect is not None:
                    return self._answer(owner.redirect[0], {"message": "Moved"}, {"Location": owner.redirect[1]})
                if url.path == "/user" and method == "GET":
                    if owner.user_login is None:
                        return self._answer(403, {"message": "Resource not accessible by integration"})
                    return self._answer(200, {"login": owner.user_login, "type": "User"})
                issues = f"/repos/{owner.repo}/issues"
                if url.path == "/graphql" and method == "POST":
                    owner.minimized.append(body["variables"]["id"])
                    return self._answer(200, {"data": {"minimizeComment": {"minimizedComment": {"isMinimized": True}}}})
                if url.path == f"{issues}/{owner.pr}/comments":
                    if method == "GET":
                        query = parse_qs(url.query)
                        per_page, page = int(query.get("per_page", ["30"])[0]), int(query.get("page", ["1"])[0])
                        chunk = owner.comments[(page - 1) * per_page: page * per_page]
                        headers = {}
                        if page * per_page < len(owner.comments):
                            base = f"{owner.next_origin or 'http://' + self.headers['Host']}{url.path}"
                            headers["Link"] = (f'<{base}?per_page={per_page}&page={page + 1}>; rel="next", '
                                               f'<{base}?per_page={per_page}&page=99>; rel="last"')
                        return self._answer(200, chunk, headers)
                    comment = owner.add(body["body"], owner.user_login or "github-actions[bot]")
                    return self._answer(201, comment, {"Location": comment["url"]})
                if url.path.startswith(f"{issues}/comments/"):
                    cid = int(url.path.rsplit("/", 1)[1])
                    found = next((c for c in owner.comments if c["id"] == cid), None)
                    if found is None:
                        return self._answer(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
                    if method == "PATCH":
                        found["body"] = body["body"]
                        return self._answer(200, found)
                    owner.comments.remove(found)
                    return self._answer(204)
                return self._answer(404, {"message": "Not Found"})

            def do_GET(self) -> None:  # noqa: N802
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

            def do_PATCH(self) -> None:  # noqa: N802
                self._handle("PATCH")

            def do_DELETE(self) -> None:  # noqa: N802
                self._handle("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, body: str, login: str = "github-actions[bot]") -> dict[str, Any]:
        self.next_id += 1
        cid = self.next_id
        comment = {"id": cid, "node_id": f"IC_kwDO{cid}", "body": body,
                   "url": f"{self.url}/repos/{self.repo}/issues/comments/{cid}",
                   "html_url": f"https://github.com/{self.repo}/pull/{self.pr}#issuecomment-{cid}",
                   "user": {"login": login, "type": "Bot"}, "author_association": "NONE"}
        self.comments.append(comment)
        return comment

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
