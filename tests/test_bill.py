"""The gate's number is the bill, end to end: what tokens-only carries over, what is counted offline, what a
missing usage does, and where a price came from."""
from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from pytest_costgate.config.specs import TokenizerSpec
from pytest_costgate.inputs.tokens import Sent, load_counter

sys.path.insert(0, str(Path(__file__).parent))
from provider_server import FakeProviders  # noqa: E402

GATE = ["--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider"]
FIXTURES = Path(__file__).parent.parent / "fixtures" / "onnx"
WEATHER = {"type": "function", "function": {
    "name": "get_current_weather", "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "unit": {"type": "string", "description": "The unit of temperature to return",
                 "enum": ["celsius", "fahrenheit"]}}, "required": ["location"]}}}


def project(pytester, url: str, params: str = "{max_tokens: 8}", model_extra: str = "", suite_extra: str = "",
            backend: str = "openai", pricing: str = "{input_per_1m: 2.00, output_per_1m: 8.00, cached_input_per_1m: 0.50}",
            tokenizer: str = "    tokenizer: cl100k_base\n") -> None:
    pytester.makefile(".jsonl", prompts="".join(json.dumps({"id": f"p{i}", "vars": {"q": "word " * (i + 1)}}) + "\n"
                                                for i in range(6)))
    pytester.makefile(".j2", t="Q: {{ q }}")
    pytester.makefile(".yaml", costgate=f"""
models:
  m:
    backend: {backend}
    base_url: {url}
    model: small-model
    max_retries: 0
{tokenizer}    pricing: {pricing}
{model_extra}
suites:
  s:
    model: m
    prompts: prompts.jsonl
    template: t.j2
    params: {params}
    requests_per_month: 1000
{suite_extra}
""")


def suite(pytester, name: str = "r.json") -> dict:
    return json.loads((pytester.path / name).read_text())["suites"]["s"]


def test_the_cookbooks_tool_example_counts_what_the_api_bills():
    """OpenAI's cookbook (How to count tokens with tiktoken, §7): 105 prompt tokens for gpt-4 and gpt-3.5-turbo."""
    counter = load_counter(TokenizerSpec("cl100k_base"))
    messages = ({"role": "system", "content": "You are a helpful assistant that can answer to questions about the "
                                              "weather."},
                {"role": "user", "content": "What's the weather like in San Francisco?"})
    assert counter.count_messages(messages) == 34
    assert counter.count_messages(messages, (WEATHER,)) == 105
    assert counter.count_all([messages], Sent(tools=(WEATHER,))) == [105]


def test_a_text_prompt_on_a_chat_endpoint_counts_as_the_user_message_it_becomes():
    """A server applying the model's chat template bills the wrapped message: transformers' ids say how many."""
    chat = json.loads((FIXTURES / "llama-tiny-chat" / "chat_reference.json").read_text())
    counter = load_counter(TokenizerSpec(tokenizer_json=FIXTURES / "llama-tiny-chat" / "tokenizer.json"))
    single = [c for c in chat["conversations"] if len(c["messages"]) == 1 and "tools" not in c]
    assert single
    for case in single:
        text = case["messages"][0]["content"]
        assert counter.count_all([text], Sent(as_chat=True)) == [len(case["ids"])]
        assert counter.count_all([text]) == [len(counter.engine.encode(text, add_special_tokens=False).ids)]
    with_tools = next(c for c in chat["conversations"] if "tools" in c and len(c["messages"]) == 1)
    sent = Sent(as_chat=True, tools=tuple(with_tools["tools"]))
    assert counter.count_all([with_tools["messages"][0]["content"]], sent) == [len(with_tools["ids"])]
    tiktoken = load_counter(TokenizerSpec("cl100k_base"))  # OpenAI's accounting: 3 + "user" + 3 around the text
    assert tiktoken.count_all(["hello there"], Sent(as_chat=True)) == [tiktoken.count("hello there") + 7]


def test_tokens_only_over_a_baseline_with_cache_hits_shows_no_change(pytester, openai_server):
    project(pytester, openai_server.url)
    openai_server.cached_tokens = 4
    assert pytester.runpytest(*GATE, "--costgate-update-baseline").ret == 0
    base = json.loads((pytester.path / "costgate-baseline.json").read_text())["suites"]["s"]
    result = pytester.runpytest(*GATE, "--costgate-tokens-only", "--costgate-report", "r.json")
    assert result.ret == 0, result.stdout.str()
    entry = suite(pytester)
    assert entry["metrics"]["cost_per_request"] == base["metrics"]["cost_per_request"]
    assert entry["metrics"]["cache_hit_ratio"] == base["metrics"]["cache_hit_ratio"]
    assert entry["prompt_changes"] == []
    assert any("cache reads and writes carried per prompt from the baseline" in n for n in entry["verdict"]["notes"])


def test_tokens_only_sees_a_tool_added_by_a_pull_request(pytester, openai_server):
    project(pytester, openai_server.url, params=json.dumps({"max_tokens": 8, "tools": [WEATHER]}))
    assert pytester.runpytest(*GATE, "--costgate-update-baseline").ret == 0
    time_tool = {"type": "function", "function": {"name": "get_local_time", "description": "Get the local time",
                                                  "parameters": {"type": "object", "properties": {
                                                      "city": {"type": "string", "description": "The city"}}}}}
    project(pytester, openai_server.url, params=json.dumps({"max_tokens": 8, "tools": [WEATHER, time_tool]}))
    result = pytester.runpytest(*GATE, "--costgate-tokens-only", "--costgate-report", "r.json")
    entry = suite(pytester)
    input_row = next(r for r in entry["verdict"]["rows"] if r["metric"] == "input_tokens_mean")
    assert Decimal(input_row["delta"]) > 0 and input_row["status"] in ("warn", "fail")
    assert entry["attribution"]["params_changed"][0][0] == "tools"
    result.stdout.fnmatch_lines(["*input tokens +*/request*after params.tools changed*"])


def test_tools_no_offline_accounting_covers_are_said_to_be_counted_live_only(pytester, openai_server):
    anthropic_tool = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}
    project(pytester, openai_server.url, params=json.dumps({"max_tokens": 8, "tools": [anthropic_tool]}))
    assert pytester.runpytest(*GATE, "--costgate-update-baseline").ret == 0
    result = pytester.runpytest(*GATE, "--costgate-tokens-only")
    result.stdout.fnmatch_lines(["*tool definitions (1) are counted live only*"])


def test_a_reasoning_request_without_usage_failed_unless_the_suite_opts_in(pytester, openai_server):
    openai_server.default = "ok-nousage"
    project(pytester, openai_server.url, params="{max_tokens: 8, reasoning_effort: high}")
    result = pytester.runpytest(*GATE, "--costgate-report", "r.json")
    assert result.ret != 0
    assert "the server sent no usage, and the request asks for reasoning" in suite(pytester)["errors"][0]
    project(pytester, openai_server.url, params="{max_tokens: 8, reasoning_effort: high}",
            suite_extra="    without_usage: tokenizer\n")
    result = pytester.runpytest(*GATE, "--costgate-report", "r.json")
    entry = suite(pytester)
    assert not entry["errors"] and entry["metrics"]["output_tokens_mean"] not in (None, "0")
    result.stdout.fnmatch_lines(["*the server sent no usage: tokens counted with the tokenizer*"])


def test_reasoning_tokens_are_their_own_metric_and_name_the_param(pytester):
    providers = FakeProviders()
    try:
        project(pytester, providers.url + "/v1", params="{reasoning: {effort: low}}",
                model_extra="    endpoint: responses\n")
        providers.usage["responses"]["output_tokens_details"]["reasoning_tokens"] = 6
        assert pytester.runpytest(*GATE, "--costgate-update-baseline").ret == 0
        providers.usage["responses"]["output_tokens"] = 711
        providers.usage["responses"]["output_tokens_details"]["reasoning_tokens"] = 706
        project(pytester, providers.url + "/v1", params="{reasoning: {effort: high}}",
                model_extra="    endpoint: responses\n")
        result = pytester.runpytest(*GATE, "--costgate-report", "r.json")
        assert result.ret == 1
        entry = suite(pytester)
        assert entry["metrics"]["reasoning_tokens_mean"] == "706"
        result.stdout.fnmatch_lines(["*output tokens +700/request (*) as reasoning tokens 6 → 706 after "
                                     "params.reasoning *"])
    finally:
        providers.close()


def test_prices_from_genai_prices_are_stored_with_their_source_and_date(pytester, openai_server):
    pytest.importorskip("genai_prices")
    project(pytester, openai_server.url, pricing="{from: genai-prices, provider: openai, model: gpt-4o-mini, "
                                                 "at: 2026-11-01}")
    assert pytester.runpytest(*GATE, "--costgate-update-baseline").ret == 0
    stored = json.loads((pytester.path / "costgate-baseline.json").read_text())["suites"]["s"]["pricing"]
    assert stored["source"] == "genai-prices" and stored["at"] == "2026-11-01" and stored["input_per_1m"] == "0.15"
    project(pytester, openai_server.url, pricing="{from: genai-prices, provider: openai, model: gpt-4o, "
                                                 "at: 2026-11-01}")
    result = pytester.runpytest(*GATE)
    result.stdout.fnmatch_lines(["*prices changed: genai-prices * (gpt-4o-mini → gpt-4o): input $0.150 → $2.500*per 1M tokens*"])


def test_a_source_price_needs_a_date_and_a_known_model(pytester, openai_server):
    pytest.importorskip("genai_prices")
    project(pytester, openai_server.url, pricing="{from: genai-prices, model: gpt-4o-mini}")
    result = pytester.runpytest(*GATE)
    result.stderr.fnmatch_lines(["*costgate.yaml:8: models.m.pricing: prices from genai-prices change over time: say "
                                 "the date*"])
    project(pytester, openai_server.url, pricing="{from: genai-prices, model: no-such-model-xyz, at: 2026-11-01}")
    result = pytester.runpytest(*GATE)
    result.stderr.fnmatch_lines(["*models.m.pricing: genai-prices * has no model 'no-such-model-xyz'*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_claude_in_tokens_only_mode_counts_by_the_endpoint_or_says_how(pytester):
    providers = FakeProviders()
    try:
        project(pytester, providers.url, backend="anthropic", tokenizer="",
                pricing="{input_per_1m: 3, output_per_1m: 15}")
        assert pytester.runpytest(*GATE, "--costgate-update-baseline").ret == 0
        result = pytester.runpytest(*GATE, "--costgate-tokens-only")
        result.stdout.fnmatch_lines(["*Claude's tokenizer is not public*count_tokens: endpoint*"])
        project(pytester, providers.url, backend="anthropic", tokenizer="",
                pricing="{input_per_1m: 3, output_per_1m: 15}", model_extra="    count_tokens: endpoint\n")
        result = pytester.runpytest(*GATE, "--costgate-tokens-only", "--costgate-report", "r.json")
        entry = suite(pytester)
        assert entry["metrics"]["input_tokens_mean"] == "123"  # the endpoint's count, nothing carried over
        assert any(r["path"] == "/v1/messages/count_tokens" for r in providers.requests)
    finally:
        providers.close()


def test_the_messages_api_usage_is_priced_with_cache_writes(pytester):
    providers = FakeProviders()
    try:
        project(pytester, providers.url, backend="anthropic", params="{max_tokens: 64}",
                pricing="{input_per_1m: 3, output_per_1m: 15, cached_input_per_1m: 0.3, cache_write_per_1m: 3.75, "
                        "cache_write_1h_per_1m: 6}")
        assert pytester.runpytest(*GATE, "--costgate-report", "r.json").ret == 0
        record = suite(pytester)["prompts"]
        row = dict(zip(record["columns"], record["rows"][0]))
        assert (row["input_tokens"], row["cached_tokens"], row["cache_write_tokens"], row["cache_write_1h_tokens"],
                row["reasoning_tokens"]) == (512, 400, 100, 40, 4)
        # 12 uncached, 400 read, 60 written for 5 minutes, 40 for an hour, 9 out
        expected = (Decimal(12) * 3 + Decimal(400) * Decimal("0.3") + Decimal(60) * Decimal("3.75")
                    + Decimal(40) * 6 + Decimal(9) * 15) / 10**6
        assert Decimal(row["cost"]) == expected
    finally:
        providers.close()


def test_prices_check_lists_hand_typed_prices_that_differ_from_the_source(tmp_path, capsys):
    pytest.importorskip("genai_prices")
    from pytest_costgate.cli import main

    (tmp_path / "p.jsonl").write_text('{"id": "a", "prompt": "x"}\n')
    (tmp_path / "costgate.yaml").write_text(f"""
models:
  gpt-4o-mini: {{backend: openai, base_url: "http://127.0.0.1:9/v1", pricing: {{input_per_1m: 0.15, output_per_1m: 0.60, cached_input_per_1m: 0.075}}}}
  stale: {{backend: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4o, pricing: {{input_per_1m: 5, output_per_1m: 15}}}}
suites:
  s: {{model: gpt-4o-mini, prompts: {tmp_path / 'p.jsonl'}}}
""")
    assert main(["prices", "check", str(tmp_path / "costgate.yaml"), "--at", "2026-11-01"]) == 1
    out = capsys.readouterr().out
    assert "gpt-4o-mini: same" in out and "stale: differs" in out and "input_per_1m: 5 here, 2.5 in genai-prices" in out


def test_the_default_tokenizer_follows_the_model_entrys_name(tmp_path):
    from pytest_costgate.config.loader import load_config

    (tmp_path / "p.jsonl").write_text('{"id": "a", "prompt": "x"}\n')
    (tmp_path / "costgate.yaml").write_text(f"""
models:
  gpt-4o-mini: {{backend: openai, base_url: "http://127.0.0.1:9/v1"}}
  named: {{backend: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4}}
suites:
  s: {{model: gpt-4o-mini, prompts: {tmp_path / 'p.jsonl'}}}
""")
    config = load_config(tmp_path / "costgate.yaml")
    assert config.models["gpt-4o-mini"].tokenizer.encoding == "o200k_base"  # was cl100k_base, silently
    assert config.models["named"].tokenizer.encoding == "cl100k_base"


def test_a_chat_template_role_file_may_include_another(pytester, openai_server):
    pytester.makefile(".jsonl", prompts='{"id": "a", "vars": {"q": "hello"}}\n')
    (pytester.path / "policy.txt").write_text("Always be polite.")
    (pytester.path / "system.j2").write_text('You are support. {% include "policy.txt" %}')
    pytester.makefile(".yaml", costgate=f"""
models:
  m: {{backend: openai, base_url: "{openai_server.url}", max_retries: 0, tokenizer: cl100k_base}}
suites:
  s:
    model: m
    prompts: prompts.jsonl
    chat_template:
      - {{role: system, template: system.j2}}
      - {{role: user, text: "{{{{ q }}}}"}}
""")
    result = pytester.runpytest(*GATE, "--costgate-report", "r.json")
    assert result.ret == 0, result.stdout.str()
    assert openai_server.requests[-1]["body"]["messages"][0]["content"] == "You are support. Always be polite."
    assert "policy.txt" in suite(pytester)["template_files"]


def test_the_monthly_delta_after_failed_requests_compares_the_prompts_both_answered(pytester, openai_server):
    project(pytester, openai_server.url, suite_extra="    max_error_rate: 0.5\n")
    assert pytester.runpytest(*GATE, "--costgate-update-baseline").ret == 0
    openai_server.script.extend(["ok", "ok", "ok", "401"])  # the 4th prompt fails now
    result = pytester.runpytest(*GATE, "--costgate-report", "r.json")
    row = next(line for line in result.stdout.lines if line.startswith("s "))
    assert "+$0.00" in row, row  # the common prompts cost what they did; the stored totals differ
