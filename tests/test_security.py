"""Issue 8: no secret leaves the process, no token goes astray, no one hijacks or injects the PR comment."""
from __future__ import annotations

import json
import re
from pathlib import Path

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options
from github_server import FakeGitHub
from openai_server import FakeOpenAI

from pytest_costgate.cli import main
from pytest_costgate.hosting.github import GitHub, Target, post
from pytest_costgate.report.markdown import marker, render_markdown
from pytest_costgate.safety.errors import GitHubError
from pytest_costgate.safety.escape import terminal
from pytest_costgate.safety.redact import redact, register, register_url

KEY = "keyMARKERq7f3a9c1e5b"          # no known key shape: only the registry can catch it
HEADER_SECRET = "hdrMARKERz81k2m4n6p"
PASSWORD = "pwMARKERs3cretX"
GH_TOKEN = "tokMARKERgh5d8e2f1a9"
SECRETS = (KEY, HEADER_SECRET, PASSWORD, GH_TOKEN)
GOLDEN = Path(__file__).parent / "golden"

PROMPTS = '{"id": "a", "vars": {"q": "hello there"}}\n{"id": "b", "vars": {"q": "bye now"}}\n'
LEAKY_MODEL = '''import os
def run(prompt, params):
    if "bye" in prompt:
        raise RuntimeError("auth failed for " + os.environ["TEST_API_KEY"])
    return "echo " + os.environ["TEST_API_KEY"] + " " + prompt
'''


def config(url: str, extra_model: str = "", extra_suite: str = "") -> str:
    host = url.split("://", 1)[1]
    return f"""models:
  basic:
    backend: openai
    base_url: http://costgate:{PASSWORD}@{host}
    max_retries: 0
    pricing: {{input_per_1m: 1, output_per_1m: 2}}
  api:
    backend: openai
    base_url: {url}
    api_key_env: TEST_API_KEY
    headers: {{X-Api-Key: {HEADER_SECRET}, X-Team: search}}
    max_retries: 0
    pricing: {{input_per_1m: 1, output_per_1m: 2}}
{extra_model}  leaky:
    backend: python
    function: leaky:run
    path: .
    pricing: {{input_per_1m: 1, output_per_1m: 2}}
suites:
  s-api:
    model: api
    prompts: prompts.jsonl
    template: t.j2
    max_error_rate: 1
  s-basic:
    model: basic
    prompts: prompts.jsonl
    template: t.j2
    max_error_rate: 1
{extra_suite}  s-leaky:
    model: leaky
    prompts: prompts.jsonl
    template: t.j2
    max_error_rate: 1
"""


def make_project(pytester: pytest.Pytester, url: str) -> None:
    pytester.makepyfile(leaky=LEAKY_MODEL)
    pytester.makefile(".jsonl", prompts=PROMPTS)
    pytester.makefile(".j2", t="Q: {{ q }}")
    pytester.makefile(".yaml", costgate=config(url))


def swept(pytester: pytest.Pytester, outputs: list[str], extra: list[str] = ()) -> None:
    """No secret in any stream seen, nor in any file under the project, nor in `extra` texts."""
    texts = list(outputs) + list(extra)
    for path in pytester.path.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md", ".xml", ".txt") and path.name != "event.json":
            texts.append(path.read_text(errors="replace"))  # what the runs wrote, not the inputs holding the secrets
    for secret in SECRETS:
        leaks = [t for t in texts if secret in t]
        assert not leaks, f"{secret} leaked into: {leaks[0][:2000]}"


def streams(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def test_secrets_sweep(pytester, monkeypatch):
    server = FakeOpenAI(stall_s=0.1)
    gh = FakeGitHub()
    try:
        monkeypatch.setenv("TEST_API_KEY", KEY)
        summary = pytester.path / "step-summary.md"
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
        make_project(pytester, server.url)
        outputs = []
        gate = ["--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider"]
        every = ["--tb=long", "-l", "-vv", "-rA", "--junitxml=junit.xml", "--costgate-report=r.json",
                 "--costgate-markdown=m.md", "--costgate-benchmark-json=b.json"]

        # a passing run that writes the baseline: the leaky model puts the key in its output and its errors
        result = pytester.runpytest(*gate, *every, "--costgate-update-baseline")
        outputs.append(streams(result))
        assert (pytester.path / "costgate-baseline.json").exists()
        sent = {r["headers"]["Authorization"] for r in server.requests}  # the credentials are still sent
        assert f"Bearer {KEY}" in sent and any(a.startswith("Basic ") for a in sent)
        assert any(r["headers"].get("X-Api-Key") == HEADER_SECRET for r in server.requests)

        # a server that echoes the key and the header back in a 401
        server.default = "401-echo"
        result = pytester.runpytest(*gate, *every)
        outputs.append(streams(result))
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.stdout.fnmatch_lines(["*HTTP 401: Incorrect API key provided: [*][*][*] and [*][*][*]*"])
        report = json.loads((pytester.path / "r.json").read_text())
        assert "***" in report["suites"]["s-api"]["errors"][0]

        # an unexpected exception inside requests whose message holds the request headers
        pytester.makeconftest("""
import requests.adapters
saved = requests.adapters.HTTPAdapter.send
def pytest_configure(config):
    def boom(self, request, **kwargs):
        raise ValueError(f"unexpected {dict(request.headers)} {request.url}")
    requests.adapters.HTTPAdapter.send = boom
def pytest_unconfigure(config):
    requests.adapters.HTTPAdapter.send = saved
""")
        result = pytester.runpytest(*gate, *every)
        outputs.append(streams(result))
        result.stdout.fnmatch_lines(["*unexpected ValueError: unexpected*'Authorization': '[*][*][*]'*"])
        result.stdout.no_fnmatch_line("*Traceback*")
        (pytester.path / "conftest.py").unlink()

        # config errors whose values requests would choke on, with the key in the environment
        for bad in ("    timeout_s: -1\n", "    timeout_s: .nan\n", "    headers: {X-Bad: \"a\\nb\"}\n"):
            pytester.makefile(".yaml", costgate=config(server.url).replace("    max_retries: 0\n",
                                                                           "    max_retries: 0\n" + bad, 1))
            result = pytester.runpytest(*gate, *every)
            outputs.append(streams(result))
            assert result.ret == pytest.ExitCode.USAGE_ERROR
            result.stdout.no_fnmatch_line("*Traceback*")
        monkeypatch.setenv("TEST_API_KEY", KEY + "\n")  # a copy-paste slip
        pytester.makefile(".yaml", costgate=config(server.url))
        result = pytester.runpytest(*gate, *every)
        outputs.append(streams(result))
        result.stdout.fnmatch_lines(["*contains whitespace or a line break*"])
        monkeypatch.setenv("TEST_API_KEY", KEY)

        # posting: the token never shows, not even when GitHub echoes it back
        event = pytester.path / "event.json"
        event.write_text(json.dumps({"pull_request": {"number": 7}}))
        for name, value in {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_PATH": str(event), "GITHUB_REPOSITORY": "acme/app",
                            "GITHUB_API_URL": gh.url, "GITHUB_TOKEN": GH_TOKEN}.items():
            monkeypatch.setenv(name, value)
        assert main(["comment", str(pytester.path / "r.json")]) == 0
        gh.faults.append((403, {}, {"message": f"Bad credentials: Bearer {GH_TOKEN}"}))
        gh.faults.append((422, {}, {"message": f"Validation failed for token {GH_TOKEN}"}))
        assert main(["comment", str(pytester.path / "r.json"), "--behavior", "new"]) == 0
        assert gh.comments and gh.log[0][2]["Authorization"] == f"Bearer {GH_TOKEN}"
        out = pytester.path / "cli.txt"
        out.write_text("")  # the CLI's own output is captured by capsys-free means below
    finally:
        server.close()
        gh.close()
    swept(pytester, outputs, [c["body"] for c in gh.comments])
    junit = (pytester.path / "junit.xml").read_text()
    assert "costgate_status" in junit  # junit gets the status, not the whole entry


def test_cli_output_is_redacted(tmp_path, monkeypatch, capsys):
    gh = FakeGitHub()
    try:
        report = tmp_path / "report.json"
        report.write_text(json.dumps({"schema": "costgate/1", "kind": "report", "suites": {}, "summary": {}}))
        event = tmp_path / "event.json"
        event.write_text(json.dumps({"pull_request": {"number": 7}}))
        for name, value in {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_PATH": str(event), "GITHUB_REPOSITORY": "acme/app",
                            "GITHUB_API_URL": gh.url, "MY_TOKEN": GH_TOKEN}.items():
            monkeypatch.setenv(name, value)
        gh.faults.extend([(403, {}, {"message": "no"}), (422, {}, {"message": f"Bad credentials {GH_TOKEN}"})])
        assert main(["comment", str(report), "--token-env", "MY_TOKEN"]) == 0
    finally:
        gh.close()
    captured = capsys.readouterr()
    assert "Bad credentials ***" in captured.err and GH_TOKEN not in captured.out + captured.err


def test_redaction_forms():
    register(KEY)
    register_url(f"https://bob:{PASSWORD}@example.com/v1")
    assert redact(f"x {KEY} y") == "x *** y"
    assert redact(f"{KEY.upper()}") == KEY.upper()  # only the value itself (and its encodings)
    assert redact("Authorization: Bearer abcdefghijklmnop1234") == "Authorization: Bearer ***"
    assert redact("key sk-proj-ABCDEFGHIJKLMNOPqrst and ghp_ABCDEFGHIJKLMNOPQRSTuvwx") == "key sk-*** and ghp_***"
    assert redact(f"GET https://bob:{PASSWORD}@example.com/v1") == "GET https://***@example.com/v1"
    import base64

    assert redact(base64.b64encode(f"bob:{PASSWORD}".encode()).decode()) == "***"
    assert redact("https://example.com/v1?api_key=abcd1234&x=1") == "https://example.com/v1?api_key=***&x=1"
    assert redact("plain text stays") == "plain text stays"


def test_github_token_stays_on_the_api_origin():
    gh, other = FakeGitHub(), FakeGitHub()
    try:
        for i in range(150):
            gh.add(f"chatter {i}")
        gh.next_origin = other.url  # page 2 "lives" on another origin
        target = Target("acme/app", 7, gh.url, gh.url + "/graphql")
        posted = post(f"{marker('g')}\nbody", target, GH_TOKEN, "update", marker("g"), GitHub(GH_TOKEN, gh.url))
        assert posted.action == "created"
        assert any("not followed" in w for w in posted.warnings)
        assert other.log == []  # the second origin heard nothing, token or not

        gh.redirect = (307, f"{other.url}/repos/acme/app/issues/7/comments")
        with pytest.raises(GitHubError, match="redirected to http://127.0.0.1:.*another origin; not followed"):
            post(f"{marker('g')}\nbody", target, GH_TOKEN, "update", marker("g"), GitHub(GH_TOKEN, gh.url))
        assert other.log == []
        with pytest.raises(GitHubError, match="refusing to send the GitHub token"):
            GitHub(GH_TOKEN, gh.url).request("GET", other.url + "/user")
        assert other.log == []
    finally:
        gh.close()
        other.close()


def test_graphql_url_on_another_origin_is_refused(monkeypatch, tmp_path):
    from pytest_costgate.hosting.github import target_from_env

    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/app")
    monkeypatch.setenv("GITHUB_API_URL", "https://api.github.com")
    monkeypatch.setenv("GITHUB_GRAPHQL_URL", "https://evil.example/graphql")
    with pytest.raises(GitHubError, match="not on the origin of GITHUB_API_URL"):
        target_from_env(pr=1)


def test_only_our_own_comment_is_updated_and_gate_ids_keep_two_comments():
    gh = FakeGitHub()
    try:
        target = Target("acme/app", 7, gh.url, gh.url + "/graphql")
        ours = gh.add(f"{marker('costgate.yaml')}\nold", login="github-actions[bot]")
        squatter = gh.add(f"{marker('costgate.yaml')}\nI copied your marker", login="mallory")
        client = GitHub(GH_TOKEN, gh.url)
        assert post(f"{marker('costgate.yaml')}\nnew", target, GH_TOKEN, "update", marker("costgate.yaml"),
                    client).action == "updated"
        assert ours["body"].endswith("new") and squatter["body"].endswith("I copied your marker")
        # a second gate keeps its own comment
        assert post(f"{marker('other/costgate.yaml')}\nsecond", target, GH_TOKEN, "update",
                    marker("other/costgate.yaml"), client).action == "created"
        assert post(f"{marker('costgate.yaml')}\nnewer", target, GH_TOKEN, "update", marker("costgate.yaml"),
                    client).action == "updated"
        bodies = [c["body"] for c in gh.comments]
        assert sum("second" in b for b in bodies) == 1 and ours["body"].endswith("newer")
        # delete-and-new removes only ours, never mallory's
        post(f"{marker('costgate.yaml')}\nfresh", target, GH_TOKEN, "delete-and-new", marker("costgate.yaml"), client)
        assert squatter in gh.comments and ours not in gh.comments
        # a personal token: its own login from GET /user decides
        gh.user_login = "alice"
        alice = gh.add(f"{marker('costgate.yaml')}\nalice's", login="alice")
        post(f"{marker('costgate.yaml')}\nby alice", target, GH_TOKEN, "update", marker("costgate.yaml"), client)
        assert alice["body"].endswith("by alice")
        # or --comment-author
        post(f"{marker('costgate.yaml')}\nby override", target, GH_TOKEN, "update", marker("costgate.yaml"), client,
             author="mallory")
        assert squatter["body"].endswith("by override")
    finally:
        gh.close()


def test_marker_gate_id_cannot_break_out_of_the_html_comment():
    assert marker("a --> <script>") == "<!-- costgate-comment: a%20-%2D%3E%20%3Cscript%3E -->"
    assert marker("../x/costgate.yaml") == "<!-- costgate-comment: ../x/costgate.yaml -->"


@pytest.mark.parametrize("status", ["302", "307"])
def test_model_redirects_are_not_followed(status):
    from decimal import Decimal

    from pytest_costgate.config.specs import ModelSpec, TokenizerSpec
    from pytest_costgate.replay.backends import Request
    from pytest_costgate.replay.backends.openai import OpenAIBackend

    server, other = FakeOpenAI(), FakeOpenAI()
    try:
        server.default = f"redirect-{status}"
        server.redirect_to = other.url + "/chat/completions"
        spec = ModelSpec("m", "openai", {"base_url": server.url, "headers": {"X-Api-Key": HEADER_SECRET},
                                         "max_retries": 2}, TokenizerSpec("cl100k_base"), None, "costgate.yaml:3",
                         Path("."))
        done = OpenAIBackend(spec, sleep=lambda s: None).complete(Request("p", "hi", {}))
        assert done.error and f"HTTP {status}, a redirect to {other.url}" in done.error
        assert "not followed" in done.error
        assert other.requests == [] and len(server.requests) == 1  # not retried, not re-sent anywhere
        assert Decimal(1)  # keeps the import honest for type checkers
    finally:
        server.close()
        other.close()


HOSTILE = ("</details><img src=x onerror=alert(1)> [x](javascript:alert(1)) @org/team #12 "
           "\n## Heading\n::warning title=forged::x ##[error]y \u202egnp.exe https://evil.example")


def hostile_report(hashes: bool = True) -> dict:
    """The failing-suite report with every free-text field (the ones a tampered baseline or report controls) hostile."""
    doc = json.loads((GOLDEN / "failing-suite.json").read_text())
    doc["git_sha"] = HOSTILE
    doc["environment"] = {k: HOSTILE for k in doc["environment"]}
    doc["prices"] = {"source": HOSTILE, "date": HOSTILE}
    doc["summary"]["baseline_git_sha"] = HOSTILE
    for entry in doc["suites"].values():
        entry["model"] = HOSTILE
        if hashes:
            entry["template_hash"] = HOSTILE + "head"
            entry["baseline_template_hash"] = HOSTILE
        entry["verdict"]["notes"] = [HOSTILE]
        for row in entry["verdict"]["rows"]:
            row["threshold"] = HOSTILE
            row["metric"] = HOSTILE
        entry["template_files"] = {HOSTILE: "0" * 16}
        if entry.get("attribution"):
            entry["attribution"].update(files_changed=[HOSTILE], files_added=[HOSTILE], base_model=HOSTILE,
                                        base_pricing={"kind": "tokens", "input_per_1m": "1", "output_per_1m": "2",
                                                      HOSTILE[:150]: "3"}, prompt_set_changed=True)
        for change in entry.get("prompt_changes", []):
            change["id"] = HOSTILE
    doc["suites"] = {HOSTILE + str(i): entry for i, entry in enumerate(doc["suites"].values())}
    doc["summary"]["removed_suites"] = [HOSTILE]
    return doc


def test_hostile_report_golden_renders_inert():
    from pytest_costgate.safety.errors import BaselineError
    from pytest_costgate.store.schema import parse_document

    with pytest.raises(BaselineError, match=r"suites\[.*\]\.template_hash: expected a hex hash"):
        parse_document(hostile_report(), "tampered.json")  # a tampered report is refused when read...
    body = render_markdown(parse_document(hostile_report(hashes=False), "tampered.json"))  # ...and inert anyway
    golden = GOLDEN / "hostile-fields.md"
    import os

    if os.environ.get("COSTGATE_UPDATE_GOLDEN"):
        golden.write_text(body)
    assert body == golden.read_text()
    html = cmarkgfm.github_flavored_markdown_to_html(body, options=Options.CMARK_OPT_UNSAFE)
    assert html.count("<details>") == html.count("</details>") >= 1
    assert not re.search(r"<(img|script|a|iframe|h[1-6] )[\s>]", html.replace("<h2>❌", "")), html
    assert html.count("<h2>") == 1 and "href" not in html and "javascript:" not in html.replace("javascript\u200b:", "")
    text = re.sub(r"<pre lang=\"mermaid\">.*?</pre>", "", html, flags=re.S)  # the chart's colours are #0969da
    assert not re.search(r"@(?!\u200b)\w", text) and not re.search(r"#(?!\u200b)\d", text)
    assert "\u202e" not in body  # bidi override shown as an escape, never applied


def test_log_lines_never_become_workflow_commands(pytester, monkeypatch):
    hostile_ids = ["x\n::warning title=forged::pwned", "  ::error::y", "z ##[error]legacy", "\r::add-mask::q"]
    records = "".join(json.dumps({"id": i, "vars": {"q": "hi"}}) + "\n" for i in hostile_ids)
    pytester.makefile(".jsonl", prompts=records)
    pytester.makefile(".j2", t="Q: {{ q }} {{ prompt_id }}")
    pytester.makepyfile(m="def run(prompt, params):\n    raise RuntimeError('failed on ' + prompt)\n")
    pytester.makefile(".yaml", costgate="""models:
  m: {backend: python, function: m:run, path: ., pricing: {input_per_1m: 1, output_per_1m: 1}}
suites:
  s: {model: m, prompts: prompts.jsonl, template: t.j2}
""")
    pytester.path.joinpath("costgate-baseline.json").write_text(json.dumps({"schema": "costgate/1", "suites": {
        "s": {"prompts": {"gone\n::warning::old": {"input_tokens": 1, "output_tokens": 1}}}}}))
    for actions in ("true", "false"):
        monkeypatch.setenv("GITHUB_ACTIONS", actions)
        result = pytester.runpytest("--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider",
                                    "-rA", "-vv", "--tb=long")
        lines = result.outlines + result.errlines
        assert any("failed on Q: hi x" in line for line in lines)
        fence = [line for line in lines if line.startswith("::stop-commands::")]
        commands = [line for line in lines if line.lstrip().startswith("::") or "##[" in line]
        if actions == "true":
            token = fence[0].split("::")[2]
            assert commands == [fence[0], f"::{token}::"]
        else:
            assert commands == [] and fence == []


def test_terminal_escape_unit():
    assert terminal("a\nb\r\x1b[31m") == "a\\nb\\r\\x1b[31m"
    assert not terminal("  ::warning::x").lstrip().startswith("::")
    assert "##[" not in terminal("x ##[error]y")
    assert terminal("\ud800") == "\\ud800"  # a lone surrogate prints instead of crashing the session


# Regressions from the adversarial review of the first version.

def test_library_log_records_are_redacted_and_escaped(pytester, monkeypatch):
    """urllib3 logs a malformed header line (echoing the key, with '##[') and a traceback; pytest prints it."""
    server = FakeOpenAI()
    try:
        server.default = "badheader"
        monkeypatch.setenv("TEST_API_KEY", KEY)
        pytester.makefile(".jsonl", prompts=PROMPTS)
        pytester.makefile(".j2", t="Q: {{ q }}")
        pytester.makefile(".yaml", costgate=f"""models:
  api: {{backend: openai, base_url: "{server.url}", api_key_env: TEST_API_KEY, max_retries: 0}}
suites:
  s: {{model: api, prompts: prompts.jsonl, template: t.j2}}
""")
        for actions in ("true", "false"):
            monkeypatch.setenv("GITHUB_ACTIONS", actions)
            result = pytester.runpytest("--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider",
                                        "-rA", "--log-level=DEBUG")
            text = streams(result)
            assert "Failed to parse headers" in text  # the record is shown...
            assert KEY not in text  # ...redacted
            commands = [line for line in text.splitlines() if "##[" in line or
                        (line.lstrip().startswith("::") and "stop-commands" not in line
                         and not re.fullmatch(r"::[0-9a-f]{32}::", line))]
            assert commands == []
    finally:
        server.close()


def test_a_secret_far_into_an_error_body_is_never_cut_into_view(openai_server, monkeypatch):
    from pytest_costgate.config.specs import ModelSpec, TokenizerSpec
    from pytest_costgate.replay.backends import Request
    from pytest_costgate.replay.backends.openai import OpenAIBackend

    monkeypatch.setenv("TEST_API_KEY", KEY)
    openai_server.default = "401-padded"
    spec = ModelSpec("m", "openai", {"base_url": openai_server.url, "api_key_env": "TEST_API_KEY", "max_retries": 0},
                     TokenizerSpec("cl100k_base"), None, "costgate.yaml:3", Path("."))
    done = OpenAIBackend(spec).complete(Request("p", "hi", {}))
    assert "Incorrect API key provided: ***" in done.error and KEY[:5] not in done.error


@pytest.mark.parametrize("url", [
    "http://127.0.0.2:{other}\\@127.0.0.1:{home}/repos/acme/app/issues/7/comments",
    "http://127.0.0.1:{home}@127.0.0.2:{other}/x", "http://127.0.0.1:99999/x", "http://[::1/x",
    "HTTP://127.0.0.2:{other}/x", "http://127.0.0.1:{home} /x",
])
def test_urls_the_two_parsers_read_differently_are_never_trusted(url):
    from pytest_costgate.hosting.github import origin

    home_url = "http://127.0.0.1:8000"
    link = url.format(home=8000, other=9000)
    assert origin(link) != origin(home_url)


def test_github_backslash_location_sends_nothing_to_the_other_host():
    gh, other = FakeGitHub(), FakeGitHub()
    try:
        home_port, other_port = gh.url.rsplit(":", 1)[1], other.url.rsplit(":", 1)[1]
        gh.redirect = (302, f"http://127.0.0.1:{other_port}\\@127.0.0.1:{home_port}/repos/acme/app/issues/7/comments")
        target = Target("acme/app", 7, gh.url, gh.url + "/graphql")
        with pytest.raises(GitHubError, match="not followed"):
            post(f"{marker('g')}\nbody", target, GH_TOKEN, "update", marker("g"), GitHub(GH_TOKEN, gh.url))
        assert other.log == []
    finally:
        gh.close()
        other.close()


def test_a_marker_quoted_inside_another_bots_comment_is_not_ours():
    gh = FakeGitHub()
    try:
        target = Target("acme/app", 7, gh.url, gh.url + "/graphql")
        echo = gh.add(f"Deploy preview for: {marker('costgate.yaml')} (PR title)", login="github-actions[bot]")
        post(f"{marker('costgate.yaml')}\nours", target, GH_TOKEN, "delete-and-new", marker("costgate.yaml"),
             GitHub(GH_TOKEN, gh.url))
        assert echo in gh.comments and echo["body"].endswith("(PR title)")
    finally:
        gh.close()


def test_gate_ids_that_differ_keep_distinct_markers():
    ids = ["svc a/costgate.yaml", "svc_a/costgate.yaml", "x--y", "x-y", "a" * 150, "a" * 150 + "b"]
    assert len({marker(i) for i in ids}) == len(ids)


@pytest.mark.parametrize("model, fragment", [
    ("{backend: openai, base_url: 'http://127.0.0.1:1/v1', timeout_s: " + "9" * 400 + "}", "timeout_s: expected a"),
    ("{backend: openai, base_url: 'http://127.0.0.1:1/v1', headers: {X-Api-Key: " + "7" * 200 + "}}",
     "the value of header 'X-Api-Key' must be text on one line"),
    ("{backend: openai, base_url: 'http://127.0.0.1:1/v1', headers: {X-Api-Key: " + "7" * 5000 + "}}",
     "unreadable YAML value (Exceeds the limit"),
    ("{backend: openai, base_url: 'http://[::1/v1'}", "base_url: expected an http(s) URL"),
    ("{backend: openai, base_url: 'http://127.0.0.1:1/v1', max_retries: " + "1" * 300 + "}", "max_retries: expected"),
], ids=["huge-timeout", "long-int-header", "huge-int-header", "bad-ipv6", "huge-retries"])
def test_config_values_that_broke_loading_are_clear_errors(pytester, model, fragment):
    pytester.makefile(".jsonl", prompts=PROMPTS)
    pytester.makefile(".yaml", costgate=f"models:\n  m: {model}\nsuites:\n  s: {{model: m, prompts: prompts.jsonl}}\n")
    result = pytester.runpytest("--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider",
                                "--fulltrace", "-l")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = streams(result)
    assert fragment in text and "INTERNALERROR" not in text and "Traceback" not in text


def test_ini_values_in_usage_errors_are_escaped(pytester):
    pytester.makeini("[pytest]\ncostgate = true\ncostgate_tokens_only = ##[error]title=pwned::x\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert not any("##[" in line for line in result.outlines + result.errlines)


@pytest.mark.parametrize("ref", ["--output=victim.txt", "-h", "a b", "HEAD;rm"])
def test_against_refuses_refs_that_look_like_options(pytester, ref):
    pytester.makefile(".jsonl", prompts=PROMPTS)
    pytester.makefile(".yaml", costgate="models:\n  m: {backend: python, function: 'x:y'}\nsuites:\n"
                                        "  s: {model: m, prompts: prompts.jsonl}\n")
    victim = pytester.path / "victim.txt"
    victim.write_text("precious")
    result = pytester.runpytest("--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider",
                                f"--costgate-against={ref}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert victim.read_text() == "precious"
    assert "not a git ref" in streams(result)


def test_more_encoded_forms_are_masked():
    from urllib.parse import quote

    secret = "s3cr3t/Key+value=="
    register(secret)
    for form in (quote(secret), quote(secret, safe=""), quote(secret, safe="").lower(), json.dumps(secret)[1:-1],
                 json.dumps(secret)[1:-1].replace("/", "\\/")):
        assert redact(f"x {form} y") == "x *** y", form
    register_url("http://TOKENasUSER1:@example.com/v1")
    import base64

    assert redact(base64.b64encode(b"TOKENasUSER1:").decode()) == "***"


_BIG = "p1 p2 support ticket 42 " * 200  # past SCREEN_FROM, holding no trigger


def test_the_big_text_screen_keeps_every_pattern_and_secret():
    """Big texts skip the regex when they hold no trigger: each pattern's matches must hold one."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from pytest_costgate.safety import redact as module

    assert len(_BIG) >= module.SCREEN_FROM and redact(_BIG) == _BIG
    def check(regex):
        @settings(max_examples=100, deadline=None)
        @given(st.from_regex(regex, fullmatch=True))
        def holds_a_trigger(found: str) -> None:
            assert any(t in found for t in module.TRIGGERS), (regex.pattern, found)
            text = f"{_BIG} {found} {_BIG}"
            assert redact(text) == module._pattern().sub(module._replace, text)
        holds_a_trigger()

    for regex, _ in module._PATTERNS:
        check(regex)
    register(KEY)  # a registered secret holds no trigger of its own: it screens itself
    assert redact(_BIG + KEY + _BIG) == _BIG + "***" + _BIG
