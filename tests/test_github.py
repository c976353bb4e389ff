"""Posting the sticky comment against a loopback server with GitHub's shapes and headers."""
from __future__ import annotations

import json
import time

import pytest
from github_server import FakeGitHub

from pytest_costgate.cli import main
from pytest_costgate.hosting.github import GitHub, Target, post, target_from_env
from pytest_costgate.report.markdown import MARKER
from pytest_costgate.safety.errors import GitHubError

TOKEN = "ghs_secretTOKEN123"


@pytest.fixture
def gh():
    server = FakeGitHub()
    yield server
    server.close()


def send(gh: FakeGitHub, body: str, behavior: str = "update", sleeps: list | None = None):
    target = Target("acme/app", 7, gh.url, gh.url + "/graphql")
    client = GitHub(TOKEN, gh.url, sleep=(sleeps.append if sleeps is not None else lambda s: None))
    return post(f"{MARKER}\n{body}", target, TOKEN, behavior, MARKER, client)


def methods(gh: FakeGitHub) -> list[str]:
    return [m for m, _, _ in gh.log]


def test_update_creates_then_edits_then_skips_identical(gh):
    gh.add("a human's comment")
    assert send(gh, "v1").action == "created"
    assert send(gh, "v2").action == "updated"
    gh.log.clear()
    assert send(gh, "v2").action == "unchanged"
    assert methods(gh) == ["GET", "GET"]  # who am I, then the comments; the identical body is not sent again
    ours = [c for c in gh.comments if MARKER in c["body"]]
    assert len(ours) == 1 and ours[0]["body"].endswith("v2") and gh.comments[0]["body"] == "a human's comment"
    assert gh.log[0][2]["Authorization"] == f"Bearer {TOKEN}"
    assert gh.log[0][2]["X-GitHub-Api-Version"] == "2022-11-28"


def test_new_always_adds(gh):
    send(gh, "v1", "new")
    send(gh, "v1", "new")
    assert len(gh.comments) == 2


def test_delete_and_new_removes_only_our_comments(gh):
    gh.add("keep me")
    send(gh, "v1", "new")
    send(gh, "v1", "new")
    assert send(gh, "v2", "delete-and-new").action == "created"
    assert [c["body"].split("\n")[-1] for c in gh.comments] == ["keep me", "v2"]


def test_hide_and_new_minimizes_old_ones_by_node_id(gh):
    old = send(gh, "v1", "new")
    assert old.action == "created"
    node = gh.comments[0]["node_id"]
    send(gh, "v2", "hide-and-new")
    assert gh.minimized == [node] and len(gh.comments) == 2


def test_off_sends_nothing(gh):
    assert send(gh, "v1", "off").action == "off"
    assert gh.log == []


def test_pagination_finds_our_comment_on_a_later_page(gh):
    for i in range(230):
        gh.add(f"chatter {i}")
    gh.add(f"{MARKER}\nold")
    for i in range(5):
        gh.add(f"more {i}")
    assert send(gh, "new body").action == "updated"
    assert [p for m, p, _ in gh.log if m == "GET" and "comments" in p] == [
        "/repos/acme/app/issues/7/comments?per_page=100", "/repos/acme/app/issues/7/comments?per_page=100&page=2",
        "/repos/acme/app/issues/7/comments?per_page=100&page=3"]  # 100 + 100 + 36 comments
    assert any(c["body"].endswith("new body") for c in gh.comments)


def test_retries_on_5xx_and_rate_limits(gh):
    reset = str(int(time.time()) + 2)
    gh.faults.extend([
        (502, {}, {"message": "Server Error"}),
        (429, {"Retry-After": "3"}, {"message": "You have exceeded a secondary rate limit."}),
        (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}, {"message": "API rate limit exceeded"}),
    ])
    sleeps: list[float] = []
    assert send(gh, "v1", sleeps=sleeps).action == "created"
    assert sleeps[0] == 1.0 and sleeps[1] == 3.0 and 0 < sleeps[2] <= 2.0


def test_validation_error_is_reported(gh):
    gh.faults.extend([(403, {}, {"message": "no"}), (200, {}, []),
                      (422, {}, {"message": "Validation Failed", "errors": [{"code": "custom"}]})])
    with pytest.raises(GitHubError, match="HTTP 422: Validation Failed"):
        send(gh, "v1")


def test_fork_pr_falls_back_to_the_step_summary(gh, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    gh.faults.extend([(403, {}, {"message": "no"}), (200, {}, []),
                      (403, {}, {"message": "Resource not accessible by integration",
                                 "documentation_url": "https://docs.github.com/rest"})])
    posted = send(gh, "the diff")
    assert posted.action == "fallback" and "job summary" in posted.note and TOKEN not in posted.note
    assert summary.read_text().endswith("the diff\n")
    gh.faults.extend([(403, {}, {"message": "no"}), (200, {}, []),
                      (403, {}, {"message": "Resource not accessible by integration"})])
    send(gh, "the diff")
    assert summary.read_text().count(MARKER) == 1  # not appended twice


def test_target_from_the_event_payload(tmp_path, monkeypatch):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "synchronize", "number": 42, "pull_request": {"number": 42}}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/app")
    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:1")
    monkeypatch.delenv("GITHUB_GRAPHQL_URL", raising=False)
    assert target_from_env() == Target("acme/app", 42, "http://127.0.0.1:1", "http://127.0.0.1:1/graphql")
    event.write_text(json.dumps({"ref": "refs/heads/main"}))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "push")
    with pytest.raises(GitHubError, match=r"this event \(push\) is not a pull request"):
        target_from_env()


def test_cli_comment_in_actions_posts_and_never_prints_the_token(gh, tmp_path, monkeypatch, capsys):
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"schema": "costgate/1", "kind": "report", "suites": {}, "summary": {}}))
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 7}}))
    for key, value in {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_PATH": str(event), "GITHUB_REPOSITORY": "acme/app",
                       "GITHUB_API_URL": gh.url, "GITHUB_TOKEN": TOKEN}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert main(["comment", str(report)]) == 0
    assert len(gh.comments) == 1 and gh.comments[0]["body"].startswith(MARKER)
    monkeypatch.setattr("pytest_costgate.hosting.github.time.sleep", lambda s: None)
    gh.faults.extend([(403, {}, {"message": "no"})] + [(500, {}, {"message": "boom"})] * 4)
    assert main(["comment", str(report)]) == 0  # a failed comment warns; the verdict is the gate's business
    gh.faults.extend([(403, {}, {"message": "no"})] + [(500, {}, {"message": "boom"})] * 4)
    assert main(["comment", str(report), "--strict"]) == 1
    out = capsys.readouterr()
    assert "comment created" in out.out and "not posted" in out.err
    assert TOKEN not in out.out + out.err
