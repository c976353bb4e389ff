"""No secret in any output, whatever path the text takes: a key a server echoes in other forms, and the gate-error
comment the Action posts from the whole pytest log when the gate could not run."""
from __future__ import annotations

import base64

from pytest_costgate.cli import main

GATE = ["--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider"]
KEY = "sk-live-7f3a9c1e5b2d48f6a0c4e8b1d3f5a7c9e2b4d6f8"  # 48 characters
PASSWORD = "hunter2-very-secret-pass"


def forms(secret: str) -> list[str]:
    """The key as it could be echoed, and the pieces of it long enough to matter."""
    return [secret, secret.upper(), secret[::-1], secret.encode().hex(), base64.b64encode(secret.encode()).decode(),
            base64.b64encode(secret[1:].encode()).decode(), base64.b64encode(secret[2:].encode()).decode(),
            secret[:25], secret[25:], secret[:-3]]


def leaked(text: str, secret: str) -> list[str]:
    return [f for f in forms(secret) if f in text]


def test_a_key_echoed_in_other_forms_reaches_no_output(pytester, openai_server, monkeypatch):
    monkeypatch.setenv("MY_LLM", KEY)  # a name that does not look secret: only the config says it is
    openai_server.default = "401-forms"
    pytester.makefile(".jsonl", prompts='{"id": "a", "vars": {"q": "hi"}}\n')
    pytester.makefile(".j2", t="{{ q }}")
    pytester.makefile(".yaml", costgate=f"""
models:
  m: {{backend: openai, base_url: "{openai_server.url}", api_key_env: MY_LLM, max_retries: 0, tokenizer: cl100k_base}}
suites:
  s: {{model: m, prompts: prompts.jsonl, template: t.j2}}
""")
    result = pytester.runpytest(*GATE, "--costgate-report", "r.json", "--costgate-markdown", "c.md")
    outputs = {"terminal": result.stdout.str() + result.stderr.str(),
               "report": (pytester.path / "r.json").read_text(), "markdown": (pytester.path / "c.md").read_text()}
    assert main(["comment", str(pytester.path / "r.json"), "-o", str(pytester.path / "comment.md")]) == 0
    outputs["comment"] = (pytester.path / "comment.md").read_text()
    assert "answered HTTP 401" in outputs["report"]  # the error itself is still said
    for name, text in outputs.items():
        assert not leaked(text, KEY), (name, leaked(text, KEY))


def test_the_gate_error_comment_knows_the_configs_secrets(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MY_LLM", KEY)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "costgate.yaml").write_text(f"""
models:
  m: {{backend: openai, base_url: "http://user:{PASSWORD}@127.0.0.1:9/v1", api_key_env: MY_LLM,
      headers: {{X-Custom-Auth: custom-header-secret-value-123}}}}
suites:
  s: {{model: m, prompts: missing.jsonl}}
""")  # broken on purpose (no prompt set): the gate-error path reads it all the same
    log = tmp_path / "pytest.log"
    log.write_text("collected 0 items\nERROR: costgate: backend failed: Authorization: Bearer " + KEY
                   + f" url http://user:{PASSWORD}@127.0.0.1:9/v1 header custom-header-secret-value-123\n"
                   + "E   also " + KEY.upper() + " and " + base64.b64encode(KEY.encode()).decode() + "\n")
    assert main(["comment", "--gate-error", str(log), "-o", str(tmp_path / "out.md")]) == 0
    body = (tmp_path / "out.md").read_text() + capsys.readouterr().out
    assert "could not run" in body or "gate" in body
    assert not leaked(body, KEY)
    assert PASSWORD not in body and "custom-header-secret-value-123" not in body
