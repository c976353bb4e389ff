"""Sticky pull-request comments through GitHub's REST API (and GraphQL to hide old ones)."""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import requests

from .errors import GitHubError
from .retry import rate_limit_wait

BEHAVIORS = ("update", "new", "delete-and-new", "hide-and-new", "off")
HIDE = "mutation($id: ID!) { minimizeComment(input: {subjectId: $id, classifier: OUTDATED}) { minimizedComment { isMinimized } } }"
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


@dataclass(frozen=True)
class Target:
    """Where the comment goes."""

    repo: str
    pr: int
    api: str = "https://api.github.com"
    graphql: str = "https://api.github.com/graphql"


def target_from_env(pr: int | None = None, repo: str | None = None) -> Target:
    """The PR from GITHUB_EVENT_PATH (pull_request / pull_request_target) unless given; errors say what is missing."""
    repo = repo or os.environ.get("GITHUB_REPOSITORY")
    if not repo or "/" not in repo:
        raise GitHubError("no repository: set GITHUB_REPOSITORY=owner/name or pass --repo.")
    if pr is None:
        event = os.environ.get("GITHUB_EVENT_PATH")
        if not event:
            raise GitHubError("no pull request number: pass --pr N (outside GitHub Actions there is no event file).")
        try:
            payload = json.loads(Path(event).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise GitHubError(f"{event}: cannot read the event payload: {exc}") from None
        number = (payload.get("pull_request") or {}).get("number") or payload.get("number")
        if not isinstance(number, int):
            raise GitHubError(f"{event}: this event ({os.environ.get('GITHUB_EVENT_NAME', 'unknown')}) is not a pull "
                              "request; comments are posted on pull_request and pull_request_target events.")
        pr = number
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    return Target(repo, pr, api, os.environ.get("GITHUB_GRAPHQL_URL", api + "/graphql"))


class Forbidden(GitHubError):
    """The token may not write here (a fork's read-only token, or missing permissions)."""


class GitHub:
    """A small REST client: auth, retries on 5xx and rate limits, pagination; never shows the token."""

    def __init__(self, token: str, retries: int = 3, sleep: Callable[[float], None] | None = None,
                 max_wait: float = 60.0) -> None:
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                                     "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "pytest-costgate"})
        self.retries, self.sleep, self.max_wait = retries, sleep or time.sleep, max_wait

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        for attempt in range(self.retries + 1):
            try:
                response = self.session.request(method, url, timeout=30, **kwargs)
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
                message = _message(response)
                text = f"{method} {url} answered HTTP {response.status_code}: {message}"
                if response.status_code == 403 and not limited:
                    raise Forbidden(text)
                raise GitHubError(text)
            return response
        raise GitHubError(f"{method} {url}: gave up after {self.retries + 1} attempts")  # pragma: no cover

    def comments(self, target: Target) -> list[dict[str, Any]]:
        """Every comment on the PR, following Link: rel="next" pages."""
        url: str | None = f"{target.api}/repos/{target.repo}/issues/{target.pr}/comments?per_page=100"
        found: list[dict[str, Any]] = []
        while url:
            response = self.request("GET", url)
            found += response.json()
            match = _NEXT.search(response.headers.get("Link", ""))
            url = match.group(1) if match else None
        return found


@dataclass(frozen=True)
class Posted:
    action: str  # created | updated | unchanged | off | fallback
    url: str | None = None
    note: str | None = None


def post(body: str, target: Target, token: str, behavior: str = "update", marker: str = "",
         client: GitHub | None = None) -> Posted:
    """Create, update, replace or hide-and-replace our comment; a read-only token falls back to the summary."""
    if behavior not in BEHAVIORS:
        raise GitHubError(f"comment behavior {behavior!r} is not one of {', '.join(BEHAVIORS)}.")
    if behavior == "off":
        return Posted("off")
    gh = client or GitHub(token)
    base = f"{target.api}/repos/{target.repo}/issues"
    try:
        ours = [c for c in gh.comments(target) if marker and marker in (c.get("body") or "")]
        if behavior == "update" and ours:
            latest = ours[-1]
            if latest.get("body") == body:
                return Posted("unchanged", latest.get("html_url"))
            done = gh.request("PATCH", f"{base}/comments/{latest['id']}", json={"body": body}).json()
            return Posted("updated", done.get("html_url"))
        for old in ours if behavior in ("delete-and-new", "hide-and-new") else []:
            if behavior == "delete-and-new":
                gh.request("DELETE", f"{base}/comments/{old['id']}")
            else:
                answer = gh.request("POST", target.graphql, json={"query": HIDE, "variables": {"id": old["node_id"]}}).json()
                if answer.get("errors"):
                    raise GitHubError(f"hiding comment {old['id']} failed: {answer['errors'][0].get('message')}")
        done = gh.request("POST", f"{base}/{target.pr}/comments", json={"body": body}).json()
        return Posted("created", done.get("html_url"))
    except Forbidden as exc:
        return _fallback(body, str(exc), marker)


def _fallback(body: str, reason: str, marker: str) -> Posted:
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    note = ("the token cannot comment on this pull request (a fork's read-only token, or the workflow lacks "
            "'pull-requests: write')")
    if summary:
        try:
            path = Path(summary)
            if not (marker and path.exists() and marker in path.read_text(encoding="utf-8")):
                with open(path, "a", encoding="utf-8") as handle:
                    handle.write(body + "\n")
            note += "; the cost diff is in the job summary instead"
        except OSError:
            pass
    return Posted("fallback", note=f"{note} ({reason})")


def _message(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason
    return str(data.get("message", data))[:300] if isinstance(data, dict) else str(data)[:300]
