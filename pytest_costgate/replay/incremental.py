"""Incremental replay: a hash of what each prompt sends, so a change replays only the prompts it touched.

The hash covers the model (backend, its options except credentials and headers, and for local models
the model file's content), the generation params and the rendered prompt. Unchanged prompts reuse
their baseline records for tokens and cost, marked `reused`, and never count toward latency.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from decimal import Decimal

from ..store.records import PromptResult
from .backends import Request


def request_hash(identity: str, request: Request) -> str:
    prompt = request.prompt if isinstance(request.prompt, str) else [dict(m) for m in request.prompt]
    text = json.dumps([identity, dict(request.params), prompt], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def split(requests: Sequence[tuple[Request, int, Decimal]], hashes: Mapping[str, str],
          base: Mapping[str, PromptResult]) -> tuple[list[tuple[Request, int, Decimal]], dict[str, PromptResult]]:
    """(requests to replay: changed, new, or failed last time; records reused from the baseline, by id)."""
    replay: list[tuple[Request, int, Decimal]] = []
    reused: dict[str, PromptResult] = {}
    for request, rendered, weight in requests:
        old = base.get(request.id)
        if old is None or old.error is not None or old.request_hash != hashes[request.id]:
            replay.append((request, rendered, weight))
        else:
            reused[request.id] = reuse(old, weight)
    return replay, reused


def reuse(old: PromptResult, weight: Decimal) -> PromptResult:
    """A baseline record standing in for an unchanged prompt: tokens, cost and output; no timings."""
    return replace(old, weight=weight, ttft_ms=None, e2e_ms=None, tpot_ms=None, busy_ms=None, runs=None,
                   e2e_runs=None, reused=True)
