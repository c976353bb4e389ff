"""The openai backend against a real loopback HTTP server streaming OpenAI's SSE format."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from pytest_costgate.config.specs import ModelSpec, TokenizerSpec, TokenPrice
from pytest_costgate.inputs.tokens import load_counter
from pytest_costgate.net.retry import rate_limit_wait, retry_after
from pytest_costgate.replay.backends import Request
from pytest_costgate.replay.backends.openai import OpenAIBackend
from pytest_costgate.replay.measure import replay
from pytest_costgate.safety.errors import BackendError

CHAT = Request("p1", ({"role": "user", "content": "where is my parcel today"},), {"max_tokens": 4})


def backend(url: str, sleeps: list[float] | None = None, **options) -> OpenAIBackend:
    opts = {"base_url": url, "timeout_s": 0.3, "max_retries": 2, "backoff_s": 0.5, **options}
    spec = ModelSpec("gpt-test", "openai", opts, TokenizerSpec("cl100k_base"), None, "costgate.yaml:3", Path("."))
    return OpenAIBackend(spec, sleep=(sleeps.append if sleeps is not None else lambda s: None))


def test_stream_with_usage(openai_server):
    done = backend(openai_server.url).complete(CHAT)
    assert done.error is None
    assert done.text == "Answer: where is my parcel "
    assert done.token_source == "usage" and done.output_tokens == 5 and done.input_tokens is not None
    assert done.ttft_ms is not None and done.e2e_ms >= done.ttft_ms
    sent = openai_server.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["stream"] is True and sent["body"]["stream_options"] == {"include_usage": True}
    assert sent["body"]["max_tokens"] == 4 and sent["body"]["model"] == "gpt-test"


def test_completions_endpoint(openai_server):
    done = backend(openai_server.url, endpoint="completions").complete(Request("p", "one two three", {}))
    assert done.text.startswith("Answer: one two three") and done.token_source == "usage"
    assert openai_server.requests[0]["path"] == "/v1/completions"


def test_no_usage_falls_back_to_tokenizer(openai_server):
    openai_server.default = "ok-nousage"
    counter = load_counter(TokenizerSpec("cl100k_base"))
    price = TokenPrice(Decimal(1), Decimal(2))
    results, _ = replay(backend(openai_server.url), [(CHAT, 12, Decimal(1))], counter, price)
    assert results[0].token_source == "tokenizer"
    assert results[0].output_tokens == counter.count("Answer: where is my parcel ")
    assert results[0].input_tokens == 12  # rendered count when the server sends none


def test_unstreamed_json_answer_is_accepted(openai_server):
    openai_server.default = "json"
    done = backend(openai_server.url).complete(CHAT)
    assert done.error is None and done.token_source == "usage" and done.text.startswith("Answer:")


@pytest.mark.parametrize("fault", ["429", "500", "stall", "drop"])
def test_transient_faults_are_retried(openai_server, fault):
    openai_server.script.extend([fault])
    sleeps: list[float] = []
    done = backend(openai_server.url, sleeps).complete(CHAT)
    assert done.error is None and done.text.startswith("Answer:")
    assert len(openai_server.requests) == 2
    assert sleeps == ([0.0] if fault == "429" else [0.5])  # Retry-After: 0 honoured, else backoff


def test_backoff_doubles_and_gives_up_with_the_server_message(openai_server):
    openai_server.default = "500"
    sleeps: list[float] = []
    done = backend(openai_server.url, sleeps).complete(CHAT)
    assert sleeps == [0.5, 1.0]
    assert "HTTP 500: The server had an error" in done.error and "3 attempts" in done.error


@pytest.mark.parametrize("fault, message", [
    ("401", "HTTP 401: Incorrect API key provided (check the API key"),
    ("notjson", "the response is not JSON"),
    ("malformed", "malformed stream event (not JSON)"),
    ("error-event", "server error in stream: model overloaded"),
])
def test_permanent_faults_fail_the_request_at_once(openai_server, fault, message):
    openai_server.default = fault
    done = backend(openai_server.url).complete(CHAT)
    assert message in done.error
    assert len(openai_server.requests) == 1


def test_unreachable_endpoint_stops_after_consecutive_failures():
    dead = backend("http://127.0.0.1:9/v1", max_retries=0)
    counter = load_counter(TokenizerSpec("cl100k_base"))
    requests = [(Request(f"p{i}", "hi", {}), 1, Decimal(1)) for i in range(6)]
    results, _ = replay(dead, requests, counter, None)
    assert all(r.error for r in results)
    assert "cannot connect to http://127.0.0.1:9/v1/chat/completions" in results[0].error
    assert results[5].error.startswith("not sent: the last 3 requests failed")


def test_api_key_is_sent_and_never_in_errors(openai_server, monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sk-secret-123")
    openai_server.default = "401"
    done = backend(openai_server.url, api_key_env="TEST_KEY").complete(CHAT)
    assert openai_server.requests[0]["headers"]["Authorization"] == "Bearer sk-secret-123"
    assert "sk-secret-123" not in done.error


def test_missing_api_key_env_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("NOPE_KEY", raising=False)
    with pytest.raises(BackendError, match="environment variable NOPE_KEY"):
        backend("http://127.0.0.1:9/v1", api_key_env="NOPE_KEY")


def test_retry_after_forms():
    assert retry_after("3") == 3.0
    assert retry_after(None) is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a past date: no wait
    assert retry_after("soon") is None
    assert rate_limit_wait({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1"}) == 0.0
    assert rate_limit_wait({"X-RateLimit-Remaining": "5", "X-RateLimit-Reset": "1"}) is None
