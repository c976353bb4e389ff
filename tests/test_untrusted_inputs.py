"""What a pull request can change is read the way it is written, stays inside the repository, and can't forge
what the CLI prints."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_costgate.config.loader import load_config
from pytest_costgate.safety.errors import ConfigError


def repo(tmp_path: Path, template: str) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "p.jsonl").write_text('{"id": "a", "vars": {}}\n')
    (tmp_path / "costgate.yaml").write_text(f"""
models:
  m: {{backend: python, function: "x:y"}}
suites:
  s: {{model: m, prompts: p.jsonl, template: "{template}"}}
""")
    return tmp_path / "costgate.yaml"


def test_a_template_outside_the_repository_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("COSTGATE_ALLOW_OUTSIDE_PATHS")
    outside = tmp_path.parent / f"{tmp_path.name}-secret.txt"
    outside.write_text("root:x:0:0")
    inside = tmp_path / "repo"
    inside.mkdir()
    with pytest.raises(ConfigError, match="resolves outside the repository"):
        load_config(repo(inside, str(outside)))
    (inside / "link.j2").symlink_to(outside)  # a symlink in the repository pointing out of it: the same
    with pytest.raises(ConfigError, match="suites.s.template: .*resolves outside the repository"):
        load_config(repo(inside, "link.j2"))
    monkeypatch.setenv("COSTGATE_ALLOW_OUTSIDE_PATHS", "1")  # the workflow's opt-out, not the config's
    assert load_config(repo(inside, "link.j2")).suites[0].template.text == outside.resolve()


@pytest.mark.parametrize("budget, message", [
    ("cost_per_request_max: '$0,00001'", "write decimals with a dot"),
    ("output_tokens_max: '1,5'", "write decimals with a dot"),
])
def test_budgets_read_numbers_the_way_they_are_written(tmp_path, budget, message):
    (tmp_path / "p.jsonl").write_text('{"id": "a", "prompt": "x"}\n')
    (tmp_path / "costgate.yaml").write_text(f"""
models:
  m: {{backend: python, function: "x:y"}}
suites:
  s: {{model: m, prompts: p.jsonl, budgets: {{{budget}}}}}
""")
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "costgate.yaml")
    (tmp_path / "costgate.yaml").write_text((tmp_path / "costgate.yaml").read_text()
                                            .replace(budget, "output_tokens_max: '1,500'"))
    assert load_config(tmp_path / "costgate.yaml").suites[0].budgets.output_tokens_max == 1500


def test_show_escapes_a_line_feed_in_a_reports_suite_name(tmp_path):
    golden = Path(__file__).parent / "golden" / "all-pass.json"
    doc = json.loads(golden.read_text())
    name = next(iter(doc["suites"]))
    doc["suites"]["evil\nsupport-answer    PASS"] = doc["suites"].pop(name)
    (tmp_path / "r.json").write_text(json.dumps(doc))
    done = subprocess.run([sys.executable, "-m", "pytest_costgate.cli", "show", str(tmp_path / "r.json")],
                          capture_output=True, text=True)
    assert done.returncode == 0
    assert not any(line.startswith("support-answer    PASS") for line in done.stdout.splitlines())
    assert "evil\\nsupport-answer" in done.stdout


def test_a_chat_template_error_names_the_prompt(tmp_path):
    import shutil

    from pytest_costgate.config.specs import TokenizerSpec
    from pytest_costgate.inputs.tokens import Sent, load_counter
    from pytest_costgate.safety.errors import TemplateError

    fixtures = Path(__file__).parent.parent / "fixtures" / "onnx"
    folder = tmp_path / "tok"
    folder.mkdir()
    shutil.copy(fixtures / "llama-tiny" / "tokenizer.json", folder / "tokenizer.json")
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ raise_exception('no') }}"}))
    counter = load_counter(TokenizerSpec(tokenizer_json=folder / "tokenizer.json"))
    with pytest.raises(TemplateError, match="refused prompt 'refund-17'"):
        counter.count_all(["hi"], Sent(as_chat=True), ["refund-17"])


def test_an_empty_prompt_on_a_local_model_is_named():
    from pytest_costgate.config.specs import ModelSpec, TokenizerSpec
    from pytest_costgate.replay.backends import Request
    from pytest_costgate.replay.backends.onnx import OnnxBackend

    fixtures = Path(__file__).parent.parent / "fixtures" / "onnx"
    spec = ModelSpec("m", "onnx", {"path": str(fixtures / "llama-tiny"), "batch_size": 2},
                     TokenizerSpec(tokenizer_json=fixtures / "llama-tiny" / "tokenizer.json"), None, "x", Path("."))
    backend = OnnxBackend(spec)
    empty, fine = backend.complete_batch([Request("blank", "", {"max_new_tokens": 2}),
                                          Request("ok", "Thanks", {"max_new_tokens": 2})])
    assert "prompt 'blank' renders to no tokens" in empty.error and fine.error is None
