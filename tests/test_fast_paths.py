"""The fast paths never pass a real increase: incremental replay reuses only what nothing changed, priced at
today's prices; merge re-derives what it can and refuses parts that don't add up."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

GATE = ["--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider"]
FIXTURES = Path(__file__).parent.parent / "fixtures" / "onnx"


def project(pytester, url: str, pricing: str = "{input_per_1m: 1, output_per_1m: 2}", tokenizer: str = "cl100k_base",
            headers: str = "{}") -> None:
    pytester.makefile(".jsonl", prompts="".join(json.dumps({"id": f"p{i}", "vars": {"q": f"question {i}"}}) + "\n"
                                                for i in range(6)))
    pytester.makefile(".j2", t="Q: {{ q }}")
    pytester.makefile(".yaml", costgate=f"""
models:
  m: {{backend: openai, base_url: "{url}", max_retries: 0, tokenizer: {tokenizer}, headers: {headers},
      pricing: {pricing}}}
suites:
  s: {{model: m, prompts: prompts.jsonl, template: t.j2, params: {{max_tokens: 4}}, replay: changed,
      requests_per_month: 1000}}
""")


def test_a_price_change_is_never_hidden_by_reuse(pytester, openai_server):
    project(pytester, openai_server.url)
    assert pytester.runpytest(*GATE, "--costgate-update-baseline").ret == 0
    openai_server.requests.clear()
    project(pytester, openai_server.url, pricing="{input_per_1m: 1, output_per_1m: 200}")
    result = pytester.runpytest(*GATE, "--costgate-report", "r.json")
    assert not openai_server.requests  # nothing was sent: every record reused...
    assert result.ret == 1  # ...and priced at today's output price
    result.stdout.fnmatch_lines(["*prices changed: output $2.00 → $200.00 per 1M tokens*"])
    # an incremental baseline update stores the records at the new price, so no later PR inherits the jump
    assert pytester.runpytest(*GATE, "--costgate-update-baseline").ret == 0
    base = json.loads((pytester.path / "costgate-baseline.json").read_text())["suites"]["s"]
    report = json.loads((pytester.path / "r.json").read_text())["suites"]["s"]
    assert base["metrics"]["cost_per_request"] == report["metrics"]["cost_per_request"]
    assert pytester.runpytest(*GATE).ret == 0


def test_the_same_tokenizer_path_with_new_content_replays(pytester, openai_server, tmp_path):
    tok = pytester.path / "tok"
    tok.mkdir()
    shutil.copy(FIXTURES / "llama-tiny" / "tokenizer.json", tok / "tokenizer.json")
    project(pytester, openai_server.url, tokenizer="{tokenizer_json: tok/tokenizer.json}")
    assert pytester.runpytest(*GATE, "--costgate-update-baseline").ret == 0
    openai_server.requests.clear()
    assert pytester.runpytest(*GATE).ret == 0 and not openai_server.requests
    (tok / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages[0]['content'] }}"}))
    pytester.runpytest(*GATE)
    assert len(openai_server.requests) == 6  # a chat template beside the tokenizer changes what is counted


def test_a_non_secret_header_is_part_of_the_request(pytester, openai_server):
    project(pytester, openai_server.url, headers="{X-Tier: basic, Authorization: Bearer sk-test-000000000000000001}")
    assert pytester.runpytest(*GATE, "--costgate-update-baseline").ret == 0
    stored = (pytester.path / "costgate-baseline.json").read_text()
    assert "sk-test-000000000000000001" not in stored
    openai_server.requests.clear()
    project(pytester, openai_server.url, headers="{X-Tier: basic, Authorization: Bearer sk-test-000000000000000002}")
    pytester.runpytest(*GATE)
    assert not openai_server.requests  # a new key is not a new request
    project(pytester, openai_server.url, headers="{X-Tier: premium, Authorization: Bearer sk-test-000000000000000002}")
    pytester.runpytest(*GATE)
    assert len(openai_server.requests) == 6


def test_every_file_of_a_model_folder_is_in_its_identity(tmp_path):
    from pytest_costgate.config.specs import ModelSpec, TokenizerSpec
    from pytest_costgate.replay.identity import model_identity

    folder = tmp_path / "export"
    shutil.copytree(FIXTURES / "llama-tiny", folder)
    spec = ModelSpec("m", "onnx", {"path": str(folder)}, TokenizerSpec(tokenizer_json=folder / "tokenizer.json"),
                     None, "x", tmp_path)
    before = model_identity(spec)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "eos_token_id": 7}))
    assert model_identity(spec) != before
    after_config = model_identity(spec)
    (folder / "model.onnx.data").write_bytes(b"weights beside the graph")
    assert model_identity(spec) != after_config


def test_a_python_models_module_is_in_its_identity(tmp_path):
    from pytest_costgate.config.specs import ModelSpec, TokenizerSpec
    from pytest_costgate.replay.identity import model_identity

    (tmp_path / "mymodel.py").write_text("def run(prompt, params):\n    return 'a'\n")
    spec = ModelSpec("m", "python", {"function": "mymodel:run", "path": "."}, TokenizerSpec("cl100k_base"), None, "x",
                     tmp_path)
    before = model_identity(spec)
    (tmp_path / "mymodel.py").write_text("def run(prompt, params):\n    return 'a much longer answer'\n")
    assert model_identity(spec) != before


def test_reuse_prices_again_gpu_time_at_its_baseline_timings():
    from pytest_costgate.config.specs import GpuPrice
    from pytest_costgate.replay.incremental import reuse
    from pytest_costgate.store.records import PromptResult

    old = PromptResult("p", Decimal(1), 3, input_tokens=3, output_tokens=2, e2e_ms=1000.0, busy_ms=500.0,
                       cost=Decimal("0.0005"))
    again = reuse(old, Decimal(1), GpuPrice(Decimal(36)))
    assert again.cost == Decimal("0.005") and again.e2e_ms is None and again.reused
    assert reuse(replace(old, busy_ms=None), Decimal(1), None).cost is None


def test_merge_refuses_parts_that_do_not_add_up(pytester, demo, capsys):
    from pytest_costgate.cli import main

    for k in (1, 2):
        pytester.runpytest(*GATE, "-k", "support-answer", "--costgate-shard", f"{k}/2", "--costgate-report",
                           f"part-{k}.json").assert_outcomes(passed=1)
    config = str(demo / "costgate.yaml")

    def merge_with(change) -> str:
        part = json.loads((demo / "part-2.json").read_text())
        prompts = part["suites"]["support-answer"]["prompts"]
        change(part, prompts)
        (demo / "edited.json").write_text(json.dumps(part))
        assert main(["merge", str(demo / "part-1.json"), str(demo / "edited.json"), "-o", str(demo / "m.json"),
                     "--config", config]) == 2
        return capsys.readouterr().err

    assert main(["merge", str(demo / "part-1.json"), str(demo / "part-2.json"), "-o", str(demo / "m.json"),
                 "--config", config]) == 0
    capsys.readouterr()
    cost = lambda part, prompts: prompts["rows"][0].__setitem__(prompts["columns"].index("cost"), "0")  # noqa: E731
    assert "costs 0 in the part, but its usage costs" in merge_with(cost)
    drop = lambda part, prompts: prompts["rows"].pop()  # noqa: E731
    assert "is missing" in merge_with(drop) and "edited.json" in capsys.readouterr().err + "edited.json"
    foreign = lambda part, prompts: prompts["rows"][0].__setitem__(0, "not-in-the-prompt-set")  # noqa: E731
    assert "prompt 'not-in-the-prompt-set' is not in shard 2/2" in merge_with(foreign)
    tokens = lambda part, prompts: prompts["rows"][0].__setitem__(prompts["columns"].index("rendered_tokens"), 1)  # noqa: E731
    assert "says it rendered to 1 tokens" in merge_with(tokens)
    unhashed = lambda part, prompts: part.pop("config_sha256")  # noqa: E731
    assert "does not say which config made it" in merge_with(unhashed)
