"""The cost levers as gates: prefix-cache share, server cache hits, routing escalation, absolute budgets and cost
per resolved request (issue 14). Every expected figure is computed here from the inputs, independently."""
from __future__ import annotations

import json
from fractions import Fraction

import pytest
from conftest import records

from pytest_costgate.config.specs import PrefixCache
from pytest_costgate.inputs.cache_share import cacheable, shared_prefixes
from pytest_costgate.judge.stats import budget_status, quantile_interval

GATE = ["--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider"]
RULE = PrefixCache(min_tokens=1024, block=128)


@pytest.mark.parametrize("shared, expected", [(0, 0), (1023, 0), (1024, 1024), (1151, 1024), (1152, 1152),
                                              (1500, 1408), (4096, 4096)])
def test_openai_style_rule(shared, expected):
    assert cacheable(shared, RULE) == expected


def test_shared_prefix_is_the_longest_with_any_other_prompt():
    a = [1] * 1500 + [2] * 10
    b = [1] * 1500 + [3] * 10
    c = [1] * 1100 + [4] * 300
    d = [5] * 2000
    assert shared_prefixes([a, b, c, d]) == [1500, 1500, 1100, 0]
    assert [cacheable(n, RULE) for n in shared_prefixes([a, b, c, d])] == [1408, 1408, 1024, 0]


def brute_shares(sequences):
    """O(n^2) reference: each sequence's longest common prefix with any other."""
    out = []
    for i, s in enumerate(sequences):
        best = 0
        for j, t in enumerate(sequences):
            if i != j:
                n = 0
                while n < min(len(s), len(t)) and s[n] == t[n]:
                    n += 1
                best = max(best, n)
        out.append(best)
    return out


def test_shared_prefixes_agree_with_brute_force():
    import random

    rng = random.Random(7)
    for _ in range(200):
        seqs = [[rng.choice([1, 2]) for _ in range(rng.randint(0, 12))] for _ in range(rng.randint(1, 7))]
        assert shared_prefixes(seqs) == brute_shares(seqs)


SYSTEM = "You are the support assistant of Example Corp. Answer politely and cite the policy section.\n" * 80
QUESTIONS = ["How do I reset my password?", "Why was I charged twice this month?", "Can I export my data?",
             "Where do I change the billing address?", "Is there a student discount?", "My app crashes on start."]


def prefix_project(pytester, template: str, threshold: str = "-10%") -> None:
    pytester.makefile(".jsonl", prompts="\n".join(json.dumps({"id": f"q{i}", "vars": {"question": q}})
                                                  for i, q in enumerate(QUESTIONS)) + "\n")
    (pytester.path / "templates").mkdir(exist_ok=True)
    (pytester.path / "templates" / "support.j2").write_text(template)
    pytester.makefile(".yaml", costgate=f"""
models:
  m:
    backend: python
    function: nothing:here
    tokenizer: cl100k_base
    pricing: {{input_per_1m: 2.50, output_per_1m: 10.00, cached_input_per_1m: 1.25}}
suites:
  s:
    model: m
    tokens_only: true
    prompts: prompts.jsonl
    template: templates/support.j2
    requests_per_month: 1_000_000
    prefix_cache: {{min_tokens: 1024, block: 128}}
    thresholds:
      cacheable_prefix_share: {{fail: "{threshold}"}}
""")


def expected_share(texts):
    from pytest_costgate.config.specs import TokenizerSpec
    from pytest_costgate.inputs.tokens import load_counter

    counter = load_counter(TokenizerSpec(encoding="cl100k_base"))  # tiktoken's own encoding, loaded offline
    ids = [counter.engine.encode_ordinary(t) for t in texts]
    cache = [cacheable(n, RULE) for n in brute_shares(ids)]
    return Fraction(sum(cache), sum(len(i) for i in ids)), ids, cache


def test_cacheable_prefix_share_exact_then_a_moved_variable_fails_in_tokens_only(pytester):
    template = SYSTEM + "\nQuestion: {{ question }}"
    prefix_project(pytester, template)
    result = pytester.runpytest(*GATE, "--costgate-update-baseline")
    assert result.ret == 0, result.stdout.str()
    base = json.loads((pytester.path / "costgate-baseline.json").read_text())["suites"]["s"]
    share, ids, cache = expected_share([SYSTEM + "\nQuestion: " + q for q in QUESTIONS])
    assert share > Fraction(9, 10)  # the long system prompt is shared and cacheable
    assert abs(Fraction(base["metrics"]["cacheable_prefix_share"]) - share) < Fraction(1, 10**12)  # stored to 12 places
    rows = records(base)
    assert [rows[f"q{i}"]["cacheable_tokens"] for i in range(len(QUESTIONS))] == cache
    # priced with the cached-input price for the cacheable tokens: exact, before any call
    for i, (tokens, hit) in enumerate(zip(ids, cache)):
        row = rows[f"q{i}"]
        assert row["input_tokens"] == len(tokens)
        expected = (Fraction(len(tokens) - hit) * Fraction("2.50") + hit * Fraction("1.25")
                    + row["output_tokens"] * Fraction(10)) / 1_000_000
        assert Fraction(row["cost"]) == expected

    # the PR moves the question to the top: nothing is shared any more
    (pytester.path / "templates" / "support.j2").write_text("Question: {{ question }}\n" + SYSTEM)
    result = pytester.runpytest(*GATE, "--costgate-report", "report.json")
    assert result.ret == 1
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["cacheable_prefix_share*9*%*0%*-9*pp*fail -10pp*fail"])
    assert "cacheable prefix 9" in out and "→ 0%: the shared prefix now ends at line 1 of templates/support.j2" in out
    report = json.loads((pytester.path / "report.json").read_text())["suites"]["s"]
    assert Fraction(report["metrics"]["cacheable_prefix_share"]) == 0
    # the lost cache is priced: every input token at the full price now
    head = records(report)
    assert all(Fraction(r["cost"]) == (r["input_tokens"] * Fraction("2.50") + r["output_tokens"] * 10) / 1_000_000
               for r in head.values())


def test_a_small_drop_within_the_threshold_passes(pytester):
    prefix_project(pytester, SYSTEM + "\nQuestion: {{ question }}", threshold="-50%")
    assert pytester.runpytest(*GATE, "--costgate-update-baseline").ret == 0
    # a shorter shared system prompt: the share falls, but by less than 50 points
    (pytester.path / "templates" / "support.j2").write_text(SYSTEM[: len(SYSTEM) * 9 // 10] + "\nQ: {{ question }}")
    result = pytester.runpytest(*GATE)
    assert result.ret == 0, result.stdout.str()


def openai_project(pytester, url: str, extra: str = "", models: str = "") -> None:
    pytester.makefile(".jsonl", prompts="\n".join(json.dumps({"id": f"p{i}", "vars": {"q": "word " * (i + 1)}})
                                                  for i in range(8)) + "\n")
    pytester.makefile(".j2", t="Q: {{ q }}")
    pytester.makefile(".yaml", costgate=f"""
models:
  m:
    backend: openai
    base_url: {url}
    model: small-model
    max_retries: 0
    tokenizer: cl100k_base
    pricing: {{input_per_1m: 2.00, output_per_1m: 8.00, cached_input_per_1m: 0.50}}
{models}
suites:
  s:
    model: m
    prompts: prompts.jsonl
    template: t.j2
    requests_per_month: 1000
{extra}
""")


def test_cache_hit_ratio_from_server_usage_is_priced_and_gated(pytester, openai_server):
    openai_project(pytester, openai_server.url, extra="    thresholds:\n      cache_hit_ratio: {fail: '-10%'}\n")
    openai_server.cached_tokens = 4
    assert pytester.runpytest(*GATE, "--costgate-update-baseline").ret == 0
    base = json.loads((pytester.path / "costgate-baseline.json").read_text())["suites"]["s"]
    rows = records(base)
    assert all(r["cached_tokens"] == 4 for r in rows.values())
    inputs = sum(r["input_tokens"] for r in rows.values())
    assert abs(Fraction(base["metrics"]["cache_hit_ratio"]) - Fraction(4 * 8, inputs)) < Fraction(1, 10**12)
    for r in rows.values():  # cached input tokens at the cached price
        assert Fraction(r["cost"]) == ((r["input_tokens"] - 4) * 2 + 4 * Fraction("0.5") + r["output_tokens"] * 8) \
            / Fraction(1_000_000)
    openai_server.cached_tokens = 0  # the cache stops hitting
    result = pytester.runpytest(*GATE)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["cache_hit_ratio*%*0%*pp*fail -10pp*fail",
                                 "*cache hit ratio (server-reported cached input tokens): *% → 0% of input tokens*"])


ROUTER = """
import json, pathlib

def route(prompt, params):
    picks = json.loads(pathlib.Path(__file__).with_name("picks.json").read_text())
    n = len(prompt.split())
    return {"text": "ok " * 10, "model": picks.get(str(n), "small"), "input_tokens": 100, "output_tokens": 10}
"""


def router_project(pytester, picks: dict) -> None:
    pytester.makepyfile(router=ROUTER)
    (pytester.path / "picks.json").write_text(json.dumps(picks))
    pytester.makefile(".jsonl", prompts="\n".join(json.dumps({"id": f"p{i}", "vars": {"q": " ".join(["w"] * i)}})
                                                  for i in range(1, 9)) + "\n")
    pytester.makefile(".j2", t="{{ q }}")
    pytester.makefile(".yaml", costgate="""
models:
  router:
    backend: python
    function: router:route
    path: .
    tokenizer: cl100k_base
  small:
    backend: python
    function: router:route
    path: .
    pricing: {input_per_1m: 1.00, output_per_1m: 2.00}
  large:
    backend: python
    function: router:route
    path: .
    pricing: {input_per_1m: 10.00, output_per_1m: 20.00}
suites:
  routed:
    model: router
    routing: {default: small}
    prompts: prompts.jsonl
    template: t.j2
    requests_per_month: 1_000_000
    thresholds:
      escalation_rate: {fail: "+5%"}
""")


def test_routed_suite_escalation_and_blended_cost_exact_then_a_jump_fails(pytester):
    router_project(pytester, {"7": "large", "8": "large"})  # 2 of 8 requests go to the large model
    result = pytester.runpytest(*GATE, "--costgate-update-baseline", "--costgate-report", "base.json")
    assert result.ret == 0, result.stdout.str()
    suite = json.loads((pytester.path / "base.json").read_text())["suites"]["routed"]
    assert Fraction(suite["metrics"]["escalation_rate"]) == Fraction(2, 8)
    small, large = 100 * 1 + 10 * 2, 100 * 10 + 10 * 20  # micro-dollars per request
    assert Fraction(suite["metrics"]["cost_per_request"]) == Fraction(6 * small + 2 * large, 8 * 1_000_000)
    assert {k: Fraction(v) for k, v in suite["served"].items()} == {"small": Fraction(3, 4), "large": Fraction(1, 4)}
    assert records(suite)["p8"]["served_by"] == "large"

    (pytester.path / "picks.json").write_text(json.dumps({"5": "large", "6": "large", "7": "large", "8": "large"}))
    result = pytester.runpytest(*GATE)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["escalation_rate*25%*50%*+25 pp*fail +5pp*fail",
                                 "*served by: large 25% → 50%, small 75% → 50%; escalation 25% → 50%*",
                                 "routed FAIL: cost per request +$0.27 / 1k req (+69.2%) as escalation rate 25% → 50%*"])


def test_a_model_the_router_names_but_the_config_lacks_is_a_clear_error(pytester):
    router_project(pytester, {"3": "mystery-model"})
    result = pytester.runpytest(*GATE)
    result.stdout.fnmatch_lines(["*served by model 'mystery-model', which is not under models:*add it*"])
    assert "Traceback" not in result.stdout.str()


def test_a_dated_snapshot_name_prices_as_its_model(pytester, openai_server):
    """OpenAI answers 'gpt-4o-mini-2024-07-18' for a request for 'gpt-4o-mini'."""
    openai_project(pytester, openai_server.url, extra="    routing: {default: m}\n", models="""  big:
    backend: openai
    base_url: http://127.0.0.1:9/v1
    model: big-model
    pricing: {input_per_1m: 20.00, output_per_1m: 80.00}
""")
    openai_server.served = "big-model-2025-01-01"
    result = pytester.runpytest(*GATE, "--costgate-update-baseline", "--costgate-report", "r.json")
    assert result.ret == 0, result.stdout.str()
    suite = json.loads((pytester.path / "r.json").read_text())["suites"]["s"]
    assert Fraction(suite["metrics"]["escalation_rate"]) == 1
    for r in records(suite).values():
        assert r["served_by"] == "big"
        assert Fraction(r["cost"]) == (r["input_tokens"] * 20 + r["output_tokens"] * 80) / Fraction(1_000_000)


BUDGETED = """
def answer(prompt, params):
    n = int(prompt.split()[0])
    return {"text": "x", "input_tokens": n, "output_tokens": 10}
"""


@pytest.mark.parametrize("limit, ok", [(4000, True), (3999, False)])
def test_token_budget_boundary_and_offenders(pytester, limit, ok):
    pytester.makepyfile(budgeted=BUDGETED)
    sizes = [1000, 4000, 2500, 3999]
    pytester.makefile(".jsonl", prompts="\n".join(json.dumps({"id": f"p{n}", "vars": {"n": n}}) for n in sizes) + "\n")
    pytester.makefile(".j2", t="{{ n }}")
    pytester.makefile(".yaml", costgate=f"""
models:
  m: {{backend: python, function: budgeted:answer, path: ., tokenizer: cl100k_base,
       pricing: {{input_per_1m: 1.00, output_per_1m: 1.00}}}}
suites:
  s:
    model: m
    prompts: prompts.jsonl
    template: t.j2
    budgets: {{input_tokens_max: {limit}, cost_per_request_max: "$0.00401"}}
""")
    result = pytester.runpytest(*GATE)  # no baseline: a budget holds all the same
    out = result.stdout.str()
    if ok:
        assert result.ret == 0, out
    else:
        assert result.ret == 1
        result.stdout.fnmatch_lines(["input_tokens_max*4,000*max 3,999*fail",
                                     "*budget input_tokens_max 3,999: 1 of 4 requests over it: p4000 (4,000 tokens)*"])
    # the cost budget: 4,000 + 10 tokens at $1/M is $0.00401, equal to the budget: passes
    result = pytester.runpytest(*GATE, "--costgate-report", "r.json")
    rows = {r["metric"]: r for r in json.loads((pytester.path / "r.json").read_text())["suites"]["s"]["verdict"]["rows"]}
    assert rows["cost_per_request_max"]["status"] == "pass"
    assert rows["cost_per_request_max"]["candidate"] == "0.00401"
    assert rows["input_tokens_max"]["status"] == ("pass" if ok else "fail")


def test_latency_budget_is_judged_on_an_interval():
    steady = [50.0 + (i % 7) for i in range(60)]  # p95 about 56 ms, tight
    assert budget_status(quantile_interval(steady), 80.0) == "pass"
    assert budget_status(quantile_interval(steady), 40.0) == "fail"  # the whole interval is above 40 ms
    # mostly fast, a few slow: the p95 sits above the budget but its interval reaches well below it
    noisy = [20.0] * 56 + [200.0, 210.0, 190.0, 205.0]
    result = quantile_interval(noisy)
    assert result.estimate > 100.0 and result.low < 100.0
    assert budget_status(result, 100.0) == "inconclusive"
    assert budget_status(quantile_interval([10.0]), 100.0) == "inconclusive"  # one request says nothing


SLOW = """
import time
def answer(prompt, params):
    time.sleep(0.03)
    return "ok"
"""


@pytest.mark.parametrize("budget, status, code", [("5ms", "fail", 1), ("10000ms", "pass", 0)])
def test_latency_budget_end_to_end(pytester, budget, status, code):
    pytester.makepyfile(slow=SLOW)
    pytester.makefile(".jsonl", prompts="\n".join(json.dumps({"id": f"p{i}", "vars": {}}) for i in range(12)) + "\n")
    pytester.makefile(".j2", t="hello")
    pytester.makefile(".yaml", costgate=f"""
models:
  m: {{backend: python, function: slow:answer, path: ., tokenizer: cl100k_base,
       pricing: {{input_per_1m: 1.00, output_per_1m: 1.00}}}}
suites:
  s: {{model: m, prompts: prompts.jsonl, template: t.j2, budgets: {{latency_p95_max: "{budget}"}}}}
""")
    result = pytester.runpytest(*GATE, "--costgate-report", "r.json")
    assert result.ret == code, result.stdout.str()
    rows = {r["metric"]: r for r in json.loads((pytester.path / "r.json").read_text())["suites"]["s"]["verdict"]["rows"]}
    assert rows["latency_p95_max"]["status"] == status
    assert "over 12 prompts" in rows["latency_p95_max"]["interval"]


ANSWERS = """
import json, pathlib

def answer(prompt, params):
    wrong = json.loads(pathlib.Path(__file__).with_name("wrong.json").read_text())
    n = int(prompt)
    return {"text": "wrong" if n in wrong else f"answer {n}", "input_tokens": 50 + n, "output_tokens": 5}
"""


def test_cost_per_resolved_with_references_exact(pytester):
    pytester.makepyfile(answers=ANSWERS)
    (pytester.path / "wrong.json").write_text("[3]")
    pytester.makefile(".jsonl", prompts="\n".join(json.dumps({"id": f"p{n}", "vars": {"n": n},
                                                              "reference": f"answer {n}"}) for n in range(1, 6)) + "\n")
    pytester.makefile(".j2", t="{{ n }}")
    pytester.makefile(".yaml", costgate="""
models:
  m: {backend: python, function: answers:answer, path: ., tokenizer: cl100k_base,
      pricing: {input_per_1m: 1.00, output_per_1m: 4.00}}
suites:
  s:
    model: m
    prompts: prompts.jsonl
    template: t.j2
    quality: {min_exact_match: 0.5}
    thresholds:
      cost_per_resolved: {fail: "+10%"}
""")
    result = pytester.runpytest(*GATE, "--costgate-update-baseline", "--costgate-report", "base.json")
    assert result.ret == 0, result.stdout.str()
    cost = {n: Fraction(50 + n + 5 * 4, 1_000_000) for n in range(1, 6)}
    rows = {r["metric"]: r for r in json.loads((pytester.path / "base.json").read_text())["suites"]["s"]["verdict"]["rows"]}
    assert Fraction(rows["cost_per_resolved"]["candidate"]) == sum(cost.values()) / 4  # 4 of 5 resolved

    (pytester.path / "wrong.json").write_text("[2, 3, 4]")  # same cost, fewer right answers
    result = pytester.runpytest(*GATE, "--costgate-report", "head.json")
    assert result.ret == 1
    rows = {r["metric"]: r for r in json.loads((pytester.path / "head.json").read_text())["suites"]["s"]["verdict"]["rows"]}
    row = rows["cost_per_resolved"]
    assert Fraction(row["baseline"]) == sum(cost.values()) / 4
    assert Fraction(row["candidate"]) == sum(cost.values()) / 2
    assert row["status"] == "fail" and rows["cost_per_request"]["delta"] == "0"
    result.stdout.fnmatch_lines(["cost_per_resolved*/ 1k resolved*+100.0%*fail +10%*fail",
                                 "*resolved (output passes the quality rule): 4 → 2 of 5 requests*"])


def test_demo_levers_pass_then_the_walkthrough_edits_fail(pytester, demo):
    config = ["--costgate", "--costgate-config", "levers.yaml", "-p", "no:cacheprovider"]
    result = pytester.runpytest(*config)
    assert result.ret == 0, result.stdout.str()
    template = demo / "templates" / "support_cached.j2"
    lines = template.read_text().splitlines()
    template.write_text("\n".join(lines[1:] + lines[:1]) + "\n")  # the policy preamble goes last
    router = demo / "demo_model.py"
    router.write_text(router.read_text().replace("ROUTER_LONG_QUESTION = 10", "ROUTER_LONG_QUESTION = 9"))
    result = pytester.runpytest(*config)
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "support-routed FAIL: cost per request * as escalation rate 16.3% → 39.5%*",
        "support-cached FAIL: cost per request * as cacheable prefix 93.5% → 19.6%: the shared prefix now ends at "
        "line 1 of templates/support_cached.j2*"], consecutive=False)


LEVER_CONFIG = """
models:
  m: {backend: python, function: x:y, tokenizer: cl100k_base, pricing: {input_per_1m: 1, output_per_1m: 1}}
suites:
  s:
    model: m
    prompts: p.jsonl
    template: t.j2
"""


@pytest.mark.parametrize("extra, message", [
    ("    routing: {default: nope}\n", "suites.s.routing.default: no model named 'nope' under models:"),
    ("    routing: {default: m, fallback: m}\n", "fallback"),
    ("    prefix_cache: {min_tokens: 0}\n", "suites.s.prefix_cache.min_tokens"),
    ("    prefix_cache: {block: 12.5}\n", "suites.s.prefix_cache.block"),
    ("    budgets: {input_tokens_max: -4}\n", "suites.s.budgets.input_tokens_max: -4 is not a budget"),
    ("    budgets: {input_tokens_max: 40.5}\n", "a token budget is a whole number of tokens"),
    ("    budgets: {cost_per_request_max: 0.002}\n", "write money with a dollar sign, e.g. '$0.002'"),
    ("    budgets: {latency_p95_max: fast}\n", "is not a budget: write a positive number such as '800ms'"),
    ("    budgets: {latency_p99_max: 800ms}\n", "latency_p99_max"),
    ("    thresholds: {cache_hit_ratio: {fail: '+10%'}}\n", "write the largest fall allowed, in percentage points: '-10%'"),
    ("    thresholds: {escalation_rate: {fail: '-5%'}}\n", "escalation_rate"),
])
def test_bad_lever_settings_name_the_field(tmp_path, extra, message):
    from pytest_costgate.config.loader import load_config
    from pytest_costgate.safety.errors import ConfigError

    (tmp_path / "p.jsonl").write_text('{"id": "a", "vars": {}}\n')
    (tmp_path / "t.j2").write_text("hi")
    (tmp_path / "costgate.yaml").write_text(LEVER_CONFIG + extra)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "costgate.yaml")
    assert message in str(caught.value)
    assert "costgate.yaml" in str(caught.value)


def test_snapshot_names_match_only_a_date_suffix():
    from pytest_costgate.replay.measure import route

    routes = {"gpt-4": ("gpt-4", "P4"), "gpt-4o-mini": ("mini", "Pm"), "llama-3.1": ("llama", "Pl")}
    assert route(routes, "gpt-4o-mini-2024-07-18") == ("mini", "Pm")
    assert route(routes, "gpt-4-0613") == ("gpt-4", "P4")
    assert route(routes, "gpt-4-20240101") == ("gpt-4", "P4")
    for other in ("gpt-4-32k", "llama-3.1-70b", "llama-3.1-405b-instruct", "gpt-4o-mini-evil"):
        assert route(routes, other) is None, other


def test_a_routed_model_without_pricing_fails_its_requests_instead_of_dropping_the_cost(pytester):
    router_project(pytester, {"3": "router"})  # 'router' is under models: but has no pricing
    result = pytester.runpytest(*GATE)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*served by model 'router', whose models: entry has no pricing; add its pricing*"])


def test_shares_never_exceed_the_input():
    from decimal import Decimal

    from pytest_costgate.judge.aggregate import aggregate
    from pytest_costgate.store.records import PromptResult

    rows = [PromptResult("a", Decimal(1), 5, input_tokens=5, output_tokens=1, cacheable_tokens=100, cached_tokens=50),
            PromptResult("b", Decimal(1), 5, input_tokens=15, output_tokens=1, cacheable_tokens=3, cached_tokens=0)]
    summary = aggregate(rows, None)
    assert summary.cacheable_prefix_share == Fraction(5 + 3, 20)
    assert summary.cache_hit_ratio == Fraction(5, 20)


def test_the_prefix_end_is_found_inside_an_included_file(pytester):
    policy = "".join(f"Policy rule {i}: be exact about section {i}.\n" for i in range(140))
    prefix_project(pytester, '{% include "policy.txt" %}\nQuestion: {{ question }}')
    (pytester.path / "templates" / "policy.txt").write_text(policy)
    assert pytester.runpytest(*GATE, "--costgate-update-baseline").ret == 0
    lines = policy.splitlines()
    lines.insert(3, "The customer asks: {{ question }}")  # a variable early in the included file
    (pytester.path / "templates" / "policy.txt").write_text("\n".join(lines) + "\n")
    result = pytester.runpytest(*GATE)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*the shared prefix now ends at line 4 of templates/policy.txt*"])


def test_include_template_hash_is_the_same_in_any_checkout(tmp_path):
    from pytest_costgate.config.specs import TemplateSpec
    from pytest_costgate.inputs.render import PromptRenderer

    hashes = []
    for where in ("one", "two/deeper"):
        folder = tmp_path / where
        folder.mkdir(parents=True)
        (folder / "policy.txt").write_text("Rules.\n")
        (folder / "t.j2").write_text('{% include "policy.txt" %}\nQ: {{ q }}')
        hashes.append(PromptRenderer(TemplateSpec(text=folder / "t.j2")).hash)
    assert hashes[0] == hashes[1]


def test_suite_budgets_add_to_the_defaults(tmp_path):
    from pytest_costgate.config.loader import load_config

    (tmp_path / "p.jsonl").write_text('{"id": "a", "vars": {}}\n')
    (tmp_path / "t.j2").write_text("hi")
    (tmp_path / "costgate.yaml").write_text(LEVER_CONFIG.replace("suites:", "defaults:\n  budgets: {input_tokens_max: 4000, "
                                                                 "output_tokens_max: 512}\nsuites:")
                                            + "    budgets: {output_tokens_max: 256, latency_p95_max: 800ms}\n")
    budgets = load_config(tmp_path / "costgate.yaml").suites[0].budgets
    assert (budgets.input_tokens_max, budgets.output_tokens_max, budgets.latency_p95_max) == (4000, 256, 800)


@pytest.mark.parametrize("metric, value, needs", [("escalation_rate", "+5%", "routing: {default: MODEL}"),
                                                  ("cacheable_prefix_share", "-10%", "prefix_cache:"),
                                                  ("cost_per_resolved", "+5%", "a quality: rule")])
def test_a_lever_threshold_without_its_lever_is_a_config_error(tmp_path, metric, value, needs):
    from pytest_costgate.config.loader import load_config
    from pytest_costgate.safety.errors import ConfigError

    (tmp_path / "p.jsonl").write_text('{"id": "a", "vars": {}}\n')
    (tmp_path / "t.j2").write_text("hi")
    (tmp_path / "costgate.yaml").write_text(LEVER_CONFIG + f"    thresholds: {{{metric}: {{fail: '{value}'}}}}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "costgate.yaml")
    assert f"suites.s.thresholds.{metric}: {metric} needs {needs}" in str(caught.value)


def test_a_cache_hit_threshold_without_server_counts_says_it_was_not_applied(pytester):
    pytester.makepyfile(budgeted=BUDGETED)
    pytester.makefile(".jsonl", prompts="".join(json.dumps({"id": f"p{n}", "vars": {"n": n}}) + "\n" for n in (5, 6)))
    pytester.makefile(".j2", t="{{ n }}")
    pytester.makefile(".yaml", costgate="""
models:
  m: {backend: python, function: budgeted:answer, path: ., tokenizer: cl100k_base,
      pricing: {input_per_1m: 1.00, output_per_1m: 1.00}}
suites:
  s: {model: m, prompts: prompts.jsonl, template: t.j2, thresholds: {cache_hit_ratio: {fail: '-10%'}}}
""")
    assert pytester.runpytest(*GATE, "--costgate-update-baseline").ret == 0
    result = pytester.runpytest(*GATE)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["note: threshold on cache_hit_ratio not applied: either side has no cache_hit_ratio "
                                 "(the server reported no cached tokens)"])
