"""The number in the PR is the bill: each provider's usage shape read into one record (golden payloads from the
SDKs' documented types, streamed and not, fields missing), priced exactly as genai-prices prices it."""
from __future__ import annotations

import datetime as dt
import sys
import warnings
from decimal import Decimal
from pathlib import Path

import pytest

from pytest_costgate.config.specs import ModelSpec, TokenizerSpec, TokenPrice
from pytest_costgate.pricing.prices import describe, stored_price, token_cost
from pytest_costgate.pricing.usage import Usage
from pytest_costgate.replay.backends import Request
from pytest_costgate.replay.backends import usage as readers

sys.path.insert(0, str(Path(__file__).parent))
from provider_server import FakeProviders  # noqa: E402

genai_prices = pytest.importorskip("genai_prices", reason="genai-prices needs Python 3.11 (the test extra has it)")

# ---- golden usage shapes ---------------------------------------------------------------------------------------

CHAT = {"prompt_tokens": 1200, "completion_tokens": 300,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 0, "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0}, "total_tokens": 1500}
RESPONSES = {"input_tokens": 900, "input_tokens_details": {"cached_tokens": 512}, "output_tokens": 700,
             "output_tokens_details": {"reasoning_tokens": 600}, "total_tokens": 1600}
ANTHROPIC = {"input_tokens": 50, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 2000,
             "cache_creation": {"ephemeral_5m_input_tokens": 700, "ephemeral_1h_input_tokens": 300},
             "output_tokens": 400, "output_tokens_details": {"thinking_tokens": 150}, "service_tier": "standard"}
GEMINI = {"promptTokenCount": 800, "cachedContentTokenCount": 300, "candidatesTokenCount": 120,
          "thoughtsTokenCount": 80, "toolUsePromptTokenCount": 20, "totalTokenCount": 1020,
          "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 700}, {"modality": "IMAGE", "tokenCount": 100}]}


@pytest.mark.parametrize("reader, payload, expected", [
    (readers.openai_chat, CHAT, Usage(1200, 300, cache_read_tokens=1024, output_reasoning_tokens=256,
                                      details={"input_audio_tokens": 0, "output_audio_tokens": 0})),
    (readers.openai_chat, {"prompt_tokens": 10, "completion_tokens": 2}, Usage(10, 2)),  # details missing: None
    (readers.openai_responses, RESPONSES, Usage(900, 700, cache_read_tokens=512, output_reasoning_tokens=600)),
    (readers.openai_responses, {"input_tokens": 5, "output_tokens": 1}, Usage(5, 1)),
    (readers.anthropic, ANTHROPIC, Usage(3050, 400, cache_read_tokens=2000, cache_write_tokens=1000,
                                         cache_write_1h_tokens=300, output_reasoning_tokens=150)),
    (readers.anthropic, {"input_tokens": 7, "output_tokens": 3}, Usage(7, 3)),  # no cache: nothing written
    (readers.gemini, GEMINI, Usage(820, 200, cache_read_tokens=300, output_reasoning_tokens=80,
                                   details={"input_image_tokens": 100, "input_tool_tokens": 20})),
    (readers.gemini, {"promptTokenCount": 9}, Usage(9, None)),  # the output count left out: None, never 0
])
def test_each_usage_shape_reads_into_one_record(reader, payload, expected):
    assert reader(payload) == expected
    assert reader(None) is None


@pytest.mark.parametrize("provider, flavor, body, key", [
    ("openai", "chat", {"model": "gpt-4o-mini", "usage": CHAT}, "usage"),
    ("openai", "responses", {"model": "o4-mini", "usage": RESPONSES}, "usage"),
    ("anthropic", "default", {"model": "claude-sonnet-4-5", "usage": ANTHROPIC}, "usage"),
    ("google", "default", {"modelVersion": "gemini-2.5-flash", "usageMetadata": GEMINI}, "usageMetadata"),
])
def test_the_readers_agree_with_genai_prices_extractors(provider, flavor, body, key):
    """genai-prices reads the same documented shapes into the same usage keys."""
    read = {"chat": readers.openai_chat, "responses": readers.openai_responses,
            "default": readers.anthropic if provider == "anthropic" else readers.gemini}[flavor]
    ours = read(body[key]).counts()
    theirs = genai_prices.extract_usage(body, provider_id=provider, api_flavor=flavor).usage._reported_values()
    # text parts (the remainder) and the 5-minute cache write (cache_write_tokens less its 1-hour part here) are
    # not kept apart: nothing prices them apart
    compared = {k for k in theirs if not k.startswith(("input_text", "output_text", "cache_text"))
                and k != "cache_write_5m_tokens"}
    assert {k: ours.get(k, 0) for k in compared} == {k: theirs[k] for k in compared}


def test_anthropic_stream_usage_is_message_start_then_cumulative_message_delta():
    start = {"input_tokens": 20, "cache_read_input_tokens": 100, "output_tokens": 1}
    delta = {"output_tokens": 57}
    assert readers.anthropic(start, delta) == Usage(120, 57, cache_read_tokens=100)


# ---- pricing: the same Decimal as genai-prices' calc_price --------------------------------------------------

MODELS = [("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("openai", "gpt-4.1"), ("openai", "gpt-5"),
          ("openai", "o3"), ("openai", "o4-mini"), ("anthropic", "claude-sonnet-4-5"),
          ("anthropic", "claude-opus-4-1"), ("anthropic", "claude-haiku-4-5"), ("anthropic", "claude-3-5-haiku"),
          ("google", "gemini-2.5-pro"), ("google", "gemini-2.5-flash"), ("google", "gemini-2.0-flash"),
          ("google", "gemini-3-pro-preview")]
USAGES = [dict(input_tokens=12_000, cache_read_tokens=8_000, cache_write_tokens=1_000, cache_write_1h_tokens=400,
               output_tokens=900, output_reasoning_tokens=600),
          dict(input_tokens=250_000, cache_read_tokens=20_000, output_tokens=2_000, output_reasoning_tokens=500),
          dict(input_tokens=1_000, output_tokens=10)]
WHEN = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("provider, model", MODELS)
def test_cost_equals_genai_prices_calc_price(provider, model):
    from pytest_costgate.config.prices import genai_prices as source

    price = source(provider, model, WHEN)
    assert price.source is not None and price.source.at == "2026-11-01"
    again = stored_price(describe(price))  # what a report stores prices the same
    for usage in USAGES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = genai_prices.calc_price(genai_prices.Usage(**usage), model, provider_id=provider,
                                               genai_request_timestamp=WHEN).total_price
        assert token_cost(price, Usage(**usage)) == expected
        assert token_cost(again, Usage(**usage)) == expected


def test_a_long_context_tier_prices_the_whole_request():
    price = TokenPrice(Decimal(3), Decimal(15), tiers=())
    from pytest_costgate.config.specs import PriceTier

    tiered = TokenPrice(Decimal(3), Decimal(15), tiers=(PriceTier(200_000, {"input_per_1m": Decimal(6),
                                                                            "output_per_1m": Decimal("22.5")}),))
    assert token_cost(tiered, Usage(200_000, 1000)) == token_cost(price, Usage(200_000, 1000))  # not above it
    assert token_cost(tiered, Usage(200_001, 1000)) == (Decimal(200_001) * 6 + Decimal(1000) * Decimal("22.5")) / 10**6


# ---- the backends against a loopback server of each shape ---------------------------------------------------

@pytest.fixture
def providers():
    server = FakeProviders()
    yield server
    server.close()


def model(backend: str, url: str, **options) -> ModelSpec:
    opts = {"base_url": url, "model": {"anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash",
                                       "openai": "o4-mini"}[backend], "max_retries": 0, **options}
    return ModelSpec("m", backend, opts, TokenizerSpec("cl100k_base"), None, "costgate.yaml:3", Path("."))


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("backend, expected", [
    ("anthropic", Usage(512, 9, cache_read_tokens=400, cache_write_tokens=100, cache_write_1h_tokens=40,
                        output_reasoning_tokens=4)),
    ("gemini", Usage(33, 12, cache_read_tokens=10, output_reasoning_tokens=7, details={"input_tool_tokens": 3})),
    ("openai", Usage(21, 11, cache_read_tokens=8, output_reasoning_tokens=6)),
])
def test_backends_read_their_providers_usage_and_tool_calls(providers, backend, expected, stream):
    from pytest_costgate.replay.backends.anthropic import AnthropicBackend
    from pytest_costgate.replay.backends.gemini import GeminiBackend
    from pytest_costgate.replay.backends.openai import OpenAIBackend

    cls = {"anthropic": AnthropicBackend, "gemini": GeminiBackend, "openai": OpenAIBackend}[backend]
    url = providers.url + ("/v1" if backend == "openai" else "")
    providers.stream, providers.tool = stream, True
    extra = {"endpoint": "responses"} if backend == "openai" else {}
    api = cls(model(backend, url, **extra))
    params = {"max_tokens": 64} if backend == "anthropic" else {}
    chat = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "where is my parcel today"})
    done = api.complete(Request("p", chat, params))
    assert done.error is None, done.error
    assert done.usage == expected and done.token_source == "usage"
    assert done.text.startswith("Answer: where is my") and 'tool call get_weather({"city": "Paris"})' in done.text
    sent = providers.requests[-1]
    if backend == "anthropic":
        assert sent["path"] == "/v1/messages" and sent["body"]["system"] == "Be brief."
        assert sent["body"]["messages"] == [{"role": "user", "content": "where is my parcel today"}]
    elif backend == "gemini":
        assert sent["path"].endswith("/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
        assert sent["body"]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    else:
        assert sent["path"] == "/v1/responses" and sent["body"]["input"][1]["content"] == "where is my parcel today"


def test_keys_go_in_each_providers_header(providers, monkeypatch):
    from pytest_costgate.replay.backends.anthropic import AnthropicBackend
    from pytest_costgate.replay.backends.gemini import GeminiBackend

    monkeypatch.setenv("PROVIDER_KEY", "sk-test-provider-key-000000000001")
    AnthropicBackend(model("anthropic", providers.url, api_key_env="PROVIDER_KEY")).complete(
        Request("p", "hi there", {"max_tokens": 8}))
    GeminiBackend(model("gemini", providers.url, api_key_env="PROVIDER_KEY")).complete(Request("p", "hi there", {}))
    anthropic_headers, gemini_headers = providers.requests[0]["headers"], providers.requests[1]["headers"]
    assert anthropic_headers["x-api-key"] == "sk-test-provider-key-000000000001"
    assert anthropic_headers["anthropic-version"] == "2023-06-01" and "Authorization" not in anthropic_headers
    assert gemini_headers["x-goog-api-key"] == "sk-test-provider-key-000000000001"


def test_the_messages_api_needs_max_tokens(providers):
    from pytest_costgate.replay.backends.anthropic import AnthropicBackend

    done = AnthropicBackend(model("anthropic", providers.url)).complete(Request("p", "hi", {}))
    assert "needs max_tokens" in done.error and not providers.requests


@pytest.mark.parametrize("backend, count", [("anthropic", 123), ("gemini", 77), ("openai", 55)])
def test_free_counting_endpoints(providers, backend, count):
    from pytest_costgate.replay.backends.anthropic import AnthropicBackend
    from pytest_costgate.replay.backends.gemini import GeminiBackend
    from pytest_costgate.replay.backends.openai import OpenAIBackend

    cls = {"anthropic": AnthropicBackend, "gemini": GeminiBackend, "openai": OpenAIBackend}[backend]
    url = providers.url + ("/v1" if backend == "openai" else "")
    params = {} if backend == "gemini" else {"max_tokens": 8}
    assert cls(model(backend, url)).count_input(Request("p", "hi there", params)) == count


# ---- outputs you can diff -------------------------------------------------------------------------------------

def test_chat_choices_are_kept_apart_and_tool_calls_kept_as_output():
    from pytest_costgate.inputs.tokens import load_counter
    from pytest_costgate.replay.backends.openai import ChatReader
    from pytest_costgate.replay.measure import result_from

    reader = ChatReader("x")
    for event in [
        {"choices": [{"index": 0, "delta": {"content": "Paris "}}, {"index": 1, "delta": {"content": "Lyon "}}]},
        {"choices": [{"index": 1, "delta": {"tool_calls": [{"index": 0, "id": "c1", "function": {
            "name": "get_weather", "arguments": '{"city":'}}]}}]},
        {"choices": [{"index": 1, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ' "Lyon"}'}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}, {"index": 1, "delta": {},
                                                                         "finish_reason": "tool_calls"}]}]:
        reader.feed(event)
    done = reader.completion(1.0, 2.0)
    assert done.text == '[choice 0]\nParis \n\n[choice 1]\nLyon \ntool call get_weather({"city": "Lyon"})'
    assert done.outputs == ("Paris ", 'Lyon \ntool call get_weather({"city": "Lyon"})')
    counter = load_counter(TokenizerSpec("cl100k_base"))
    record = result_from("p", Decimal(1), 5, done, counter, None)  # no usage: each choice counted on its own
    assert record.output_tokens == sum(counter.count(p) for p in done.outputs) > 0
    assert "no usage" in record.note


def test_a_json_answer_without_a_usable_choice_is_a_failed_request():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from pytest_costgate.replay.backends.openai import OpenAIBackend

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            raw = b'{"choices": "nope", "usage": [1, 2]}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        done = OpenAIBackend(model("openai", url)).complete(Request("p", "hi", {}))
        assert done.error is not None and "without a usable choice" in done.error
    finally:
        server.shutdown()
