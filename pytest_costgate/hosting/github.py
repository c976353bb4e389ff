"""Sticky pull-request comments through GitHub's REST API (and GraphQL to hide old ones).

The token goes only to the origin of GITHUB_API_URL: no redirect or pagination link to another
origin is followed. The comment updated is ours: it carries our marker (with the gate id) and was
written by the identity posting now.
"""
from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from ..net.retry import rate_limit_wait
from ..safety.errors import GitHubError
from ..safety.redact import redact, register, shorten

BEHAVIORS = ("update", "new", "delete-and-new", "hide-and-new", "off")
HIDE = "mutation($id: ID!) { minimizeComment(input: {subjectId: $id, classifier: OUTDATED}) { minimizedComment { isMinimized } } }"
ACTIONS_BOT = "github-actions[bot]"
MAX_REDIRECTS = 3
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


def origin(url: object) -> str | None:
    """scheme://host:port of an http(s) URL that urllib and urllib3 (what requests sends with) read alike;
    None for anything else (backslashes, userinfo, spaces, a bad port), which is then never trusted."""
    from urllib3.util import parse_url

    if not isinstance(url, str) or "\\" in url or "@" in url or any(c.isspace() or not c.isprintable() for c in url):
        return None
    try:
        ours, theirs = urlsplit(url), parse_url(url)
        port = ours.port
    except ValueError:
        return None
    scheme = ours.scheme.lower()
    if scheme not in ("http", "https") or not ours.hostname:
        return None
    default = {"http": 80, "https": 443}[scheme]
    if (theirs.scheme or "").lower() != scheme or (theirs.host or "").lower().strip("[]") != ours.hostname.lower() \
            or (theirs.port or default) != (port or default):
        return None
    return f"{scheme}://{ours.hostname.lower()}:{port or default}"


@dataclass(frozen=True)
class Target:
    """Where the comment goes."""

    repo: str
    pr: int
    api: str = "https://api.github.com"
    graphql: str = "https://api.github.com/graphql"


def target_from_env(pr: int | None = None, repo: str | None = None) -> Target:
    """The PR from GITHUB_EVENT_PATH unless given (pull_request, pull_request_target, or issue_comment on a PR)."""
    repo = repo or os.environ.get("GITHUB_REPOSITORY")
    if not repo or not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo):
        raise GitHubError("no repository: set GITHUB_REPOSITORY=owner/name or pass --repo owner/name.")
    if pr is None:
        pr = _event_pr()
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    if origin(api) is None:
        raise GitHubError(f"GITHUB_API_URL {redact(api)[:100]!r} is not a plain http(s) URL.")
    graphql = os.environ.get("GITHUB_GRAPHQL_URL", api + "/graphql")
    if origin(graphql) != origin(api):
        raise GitHubError(f"GITHUB_GRAPHQL_URL {graphql!r} is not on the origin of GITHUB_API_URL {api!r}; the "
                          "token is sent to one origin only.")
    return Target(repo, pr, api, graphql)


def _event_pr() -> int:
    event = os.environ.get("GITHUB_EVENT_PATH")
    if not event:
        raise GitHubError("no pull request number: pass --pr N (outside GitHub Actions there is no event file).")
    try:
        payload = json.loads(Path(event).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GitHubError(f"{event}: cannot read the event payload: {exc}") from None
    payload = payload if isinstance(payload, dict) else {}
    number: Any = (payload.get("pull_request") or {}).get("number") or payload.get("number")
    issue: dict[str, Any] = payload["issue"] if isinstance(payload.get("issue"), dict) else {}
    if number is None and issue.get("pull_request"):  # issue_comment on a pull request
        number = issue.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
        raise GitHubError(f"{event}: this event ({os.environ.get('GITHUB_EVENT_NAME', 'unknown')}) is not a pull "
                          "request; comments are posted on pull_request, pull_request_target and issue_comment "
                          "events on a pull request.")
    return number


class Forbidden(GitHubError):
    """The token may not write here (a fork's read-only token, or missing permissions)."""


class GitHub:
    """A small REST client: auth to one origin, retries on 5xx and rate limits, pagination; never shows the token."""

    def __init__(self, token: str, api: str = "https://api.github.com", retries: int = 3,
                 sleep: Callable[[float], None] | None = None, max_wait: float = 60.0) -> None:
        register(token)
        home = origin(api)
        if home is None:
            raise GitHubError(f"the API URL {redact(api)[:100]!r} is not a plain http(s) URL.")
        self.origin = home
        self.session = requests.Session()
        self.session.trust_env = False  # no .netrc credentials or proxies picked up behind our back
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                                     "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "pytest-costgate"})
        self.retries, self.sleep, self.max_wait = retries, sleep or time.sleep, max_wait
        self.warnings: list[str] = []

    def _check(self, url: str) -> None:
        if origin(url) is None or origin(url) != self.origin:
            raise GitHubError(f"refusing to send the GitHub token to {_origin_text(url)}: only "
                              f"{self.origin} (GITHUB_API_URL) gets it.")

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One API call, retried on 5xx and rate limits; redirects followed only within the API origin."""
        for _ in range(MAX_REDIRECTS + 1):
            self._check(url)
            response = self._send(method, url, **kwargs)
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            location = response.headers.get("Location", "")
            target = urljoin(url, location)
            if origin(target) is None or origin(target) != self.origin:
                raise GitHubError(f"{method} {url} redirected to {_origin_text(target)}, another origin; not "
                                  "followed, so the token stays with GITHUB_API_URL.")
            url = target
        raise GitHubError(f"{method} {url}: more than {MAX_REDIRECTS} redirects")

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        for attempt in range(self.retries + 1):
            try:
                response = self.session.request(method, url, timeout=30, allow_redirects=False, **kwargs)
            except requests.RequestException as exc:
                if attempt == self.retries:
                    raise GitHubError(f"{method} {url} failed: {type(exc).__name__}") from None
                self.sleep(min(2.0 ** attempt, self.max_wait))
                continue
            wait = rate_limit_wait(response.headers)
            limited = response.status_code == 429 or (response.status_code == 403 and wait is not None)
            if (response.status_code >= 500 or limited) and attempt < self.retries:
                self.sleep(min(wait if wait is not None else 2.0 ** attempt, self.max_wait))
                continue
            if response.status_code >= 400:
                text = f"{method} {url} answered HTTP {response.status_code}: {_message(response)}"
                if response.status_code == 403 and not limited:
                    raise Forbidden(text)
                raise GitHubError(text)
            return response
        raise GitHubError(f"{method} {url}: gave up after {self.retries + 1} attempts")  # pragma: no cover

    def json(self, response: requests.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise GitHubError(f"{what}: GitHub answered with something that is not JSON.") from None

    def comments(self, target: Target) -> list[dict[str, Any]]:
        """Every comment on the PR, following Link: rel="next" pages on the API origin only."""
        url: str | None = f"{target.api}/repos/{target.repo}/issues/{target.pr}/comments?per_page=100"
        found: list[dict[str, Any]] = []
        pages = 0
        while url and pages < 1000:
            pages += 1
            response = self.request("GET", url)
            page = self.json(response, "listing comments")
            found += [c for c in page if isinstance(c, dict)] if isinstance(page, list) else []
            match = _NEXT.search(response.headers.get("Link", ""))
            url = urljoin(url, match.group(1)) if match else None
            if url and (origin(url) is None or origin(url) != self.origin):
                self.warnings.append(f"the next page of comments is on {_origin_text(url)}, not the API origin; "
                                     "not followed (the token stays home), so older comments were not searched")
                url = None
        return found

    def login(self, api: str) -> str | None:
        """The login the token acts as (GET /user); None for tokens that can't read it (the Actions token)."""
        try:
            data = self.json(self.request("GET", f"{api}/user"), "reading the token's user")
        except GitHubError:
            return None
        login = data.get("login") if isinstance(data, dict) else None
        return login if isinstance(login, str) and login else None


@dataclass(frozen=True)
class Posted:
    action: str  # created | updated | unchanged | off | fallback
    url: str | None = None
    note: str | None = None
    warnings: tuple[str, ...] = ()


def post(body: str, target: Target, token: str, behavior: str = "update", marker: str = "",
         client: GitHub | None = None, author: str | None = None) -> Posted:
    """Create, update, replace or hide-and-replace our comment; a read-only token falls back to the summary.

    Ours means: begins with `marker` and was written by `author` (default: the token's own login, or
    github-actions[bot] for the Actions token, which can't read its login).
    """
    if behavior not in BEHAVIORS:
        raise GitHubError(f"comment behavior {behavior!r} is not one of {', '.join(BEHAVIORS)}.")
    if behavior == "off":
        return Posted("off")
    if not marker:
        raise GitHubError("no comment marker: the sticky comment can't be found again without one.")
    gh = client or GitHub(token, target.api)
    base = f"{target.api}/repos/{target.repo}/issues"
    try:
        if behavior != "new":
            who = author or gh.login(target.api) or ACTIONS_BOT
            # Ours: it begins with our marker (as every body we post does) and we wrote it. Other workflows post
            # as github-actions[bot] too, so the author alone is not enough, nor a marker quoted inside a body.
            ours = [c for c in gh.comments(target) if str(c.get("body") or "").startswith(marker)
                    and str((c.get("user") or {}).get("login", "")).lower() == who.lower()]
        else:
            ours = []
        if behavior == "update" and ours:
            latest = ours[-1]
            if latest.get("body") == body:
                return Posted("unchanged", _url(latest), warnings=tuple(gh.warnings))
            done = gh.json(gh.request("PATCH", f"{base}/comments/{int(latest['id'])}", json={"body": body}), "editing")
            return Posted("updated", _url(done), warnings=tuple(gh.warnings))
        for old in ours if behavior in ("delete-and-new", "hide-and-new") else []:
            if behavior == "delete-and-new":
                gh.request("DELETE", f"{base}/comments/{int(old['id'])}")
            else:
                answer = gh.json(gh.request("POST", target.graphql, json={"query": HIDE, "variables": {
                    "id": str(old.get("node_id"))}}), "hiding a comment")
                if isinstance(answer, dict) and answer.get("errors"):
                    raise GitHubError(f"hiding comment {old['id']} failed: {_first_error(answer['errors'])}")
        done = gh.json(gh.request("POST", f"{base}/{target.pr}/comments", json={"body": body}), "commenting")
        return Posted("created", _url(done), warnings=tuple(gh.warnings))
    except Forbidden as exc:
        return _fallback(body, str(exc), marker)


def _url(comment: Any) -> str | None:
    url = comment.get("html_url") if isinstance(comment, dict) else None
    return url if isinstance(url, str) and url.startswith("https://") else None


def _first_error(errors: Any) -> str:
    first = errors[0] if isinstance(errors, list) and errors else errors
    return shorten(first.get("message") if isinstance(first, dict) else first, 200)


def _origin_text(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "an unparsable address"


def _fallback(body: str, reason: str, marker: str) -> Posted:
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    note = ("the token cannot comment on this pull request (a fork's read-only token, or the workflow lacks "
            "'pull-requests: write')")
    if summary:
        try:
            path = Path(summary)
            if not (marker and path.exists() and marker in path.read_text(encoding="utf-8")):
                with open(path, "a", encoding="utf-8") as handle:
                    handle.write(redact(body) + "\n")
            note += "; the cost diff is in the job summary instead"
        except OSError:
            pass
    return Posted("fallback", note=f"{note} ({redact(reason)})")


def _message(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return shorten(response.text.strip() or response.reason, 200)
    return shorten(data.get("message", data) if isinstance(data, dict) else data, 300)
