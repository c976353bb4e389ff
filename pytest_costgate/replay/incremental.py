"""Incremental replay: a hash of what each prompt sends, so a change replays only the prompts it touched.

The hash covers the model's identity (replay/identity.py: backend and code version, options and non-secret
headers, the tokenizer and its files, a local model's every file), the generation params and the rendered
prompt. Unchanged prompts reuse their baseline records for what no price can touch (tokens, output), priced
again with this run's prices, marked `reused`, and never count toward latency.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal

from ..config.specs import GpuPrice, TokenPrice
from ..pricing.prices import record_usage, request_cost
from ..store.records import PromptResult
from .backends import Request


def request_hash(identity: str, request: Request) -> str:
    prompt = request.prompt if isinstance(request.prompt, str) else [dict(m) for m in request.prompt]
    text = json.dumps([identity, dict(request.params), prompt], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


Pricer = Callable[[PromptResult], "TokenPrice | GpuPrice | None"]


def split(requests: Sequence[tuple[Request, int, Decimal]], hashes: Mapping[str, str],
          base: Mapping[str, PromptResult], price_of: Pricer
          ) -> tuple[list[tuple[Request, int, Decimal]], dict[str, PromptResult]]:
    """(requests to replay: changed, new, or failed last time; records reused from the baseline, by id).
    `price_of(record)`: the price a reused record is billed at now (a routed suite's depends on who answered)."""
    replay: list[tuple[Request, int, Decimal]] = []
    reused: dict[str, PromptResult] = {}
    for request, rendered, weight in requests:
        old = base.get(request.id)
        if old is None or old.error is not None or old.request_hash != hashes[request.id]:
            replay.append((request, rendered, weight))
        else:
            reused[request.id] = reuse(old, weight, price_of(old))
    return replay, reused


def reuse(old: PromptResult, weight: Decimal, price: TokenPrice | GpuPrice | None) -> PromptResult:
    """A baseline record standing in for an unchanged prompt: its tokens and output, its cost at this run's
    prices (GPU time at the baseline's timings), no timings of its own."""
    device = old.busy_ms if old.busy_ms is not None else old.e2e_ms
    cost = request_cost(price, record_usage(old), device) if price is not None else None
    return replace(old, weight=weight, cost=cost, ttft_ms=None, e2e_ms=None, tpot_ms=None, busy_ms=None, runs=None,
                   e2e_runs=None, reused=True)
