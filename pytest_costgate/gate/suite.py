"""One suite end to end, without pytest: prompts -> render -> tokens -> replay -> price -> verdict."""
from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..config.specs import Config, GpuPrice, SuiteSpec, TokenPrice
from ..inputs.prompts import PromptSet, PromptStream, load_prompt_set, media_parts
from ..inputs.render import PromptRenderer
from ..inputs.tokens import Sent, TokenCounter, counting_pool, counting_workers, load_counter
from ..judge.aggregate import aggregate
from ..judge.attribution import attribute
from ..judge.compare import distinct, judge_suite, prompt_changes
from ..pricing.prices import describe
from ..replay.backends import Request, create_backend, text_as_chat
from ..replay.identity import model_identity
from ..replay.incremental import request_hash, split
from ..replay.measure import Progress, TokensOnly, replay, route
from ..replay.shards import shard_of
from ..safety.deadlines import budget_now
from ..safety.errors import BackendError
from ..store.document import Document, SuiteEntry, decimal_text
from ..store.records import PromptResult, Records
from ..store.stamp import environment


@dataclass(frozen=True)
class Meta:
    """What a suite entry records about its inputs, besides the per-prompt results."""

    template_hash: str | None
    prompt_set_sha256: str
    tokenizer: str
    ids: tuple[str, ...]  # every prompt id, to tell which were not measured (a replay's time budget)
    template_files: Mapping[str, str] = field(default_factory=dict)  # template file (relative to the config) -> hash


@contextlib.contextmanager
def bulk_counting() -> Iterator[None]:
    """No garbage collection, and a short GIL switch interval: the encoder threads hand the GIL back and ask
    for it again between prompts, and at the default 5 ms they wait behind this thread's parsing instead of
    counting (measured: a million short prompts counted much faster)."""
    enabled = gc.isenabled()
    interval = sys.getswitchinterval()
    gc.disable()
    sys.setswitchinterval(float(os.environ.get("COSTGATE_SWITCH_INTERVAL", "0.0005")))
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class Prepared:
    """A suite ready to replay: its prompt set rendered and counted."""

    prompt_set: PromptSet
    renderer: PromptRenderer
    counter: TokenCounter
    rendered: list[Any]
    counts: list[int]
    base_dir: Path = Path(".")  # the config's folder: template files are named relative to it

    def references(self) -> dict[str, str]:
        return {r.id: r.reference for r in self.prompt_set.records if r.reference is not None}

    def meta(self) -> Meta:
        return Meta(self.renderer.hash, self.prompt_set.sha256, self.counter.name,
                    tuple(r.id for r in self.prompt_set.records), MappingProxyType(self.renderer.files(self.base_dir)))

    def requests(self, spec: SuiteSpec) -> list[tuple[Request, int, Decimal]]:
        return [(Request(r.id, prompt, spec.params), n, r.weight)
                for r, prompt, n in zip(self.prompt_set.records, self.rendered, self.counts)]


PRIVATE_TOKENIZERS = {"anthropic": "Claude", "gemini": "Gemini"}  # no tokenizer of theirs to count with offline


class EndpointCounting:
    """Input tokens from the provider's free counting call (count_tokens: endpoint), `concurrency` at a time."""

    def __init__(self, spec: SuiteSpec) -> None:
        self.spec = spec
        self.backend = create_backend(spec.model)
        if not hasattr(self.backend, "count_input"):
            self.backend.close()
            raise BackendError(f"{spec.model.where}: backend '{spec.model.backend}' has no token-counting endpoint; "
                               "leave count_tokens out.")
        self.pool = ThreadPoolExecutor(max(1, int(getattr(self.backend, "concurrency", 1))),
                                       thread_name_prefix="costgate-count")

    def count_later(self, chunk: list[Any], rendered: list[Any]) -> Callable[[], list[int]]:
        count = self.backend.count_input  # type: ignore[attr-defined]
        futures = [self.pool.submit(count, Request(r.id, prompt, self.spec.params)) for r, prompt in zip(chunk, rendered)]

        def results() -> list[int]:
            out = []
            for record, future in zip(chunk, futures):
                try:
                    out.append(future.result())
                except BackendError as exc:
                    raise BackendError(f"counting prompt '{record.id}' with the provider's endpoint failed: {exc}") from None
            return out

        return results

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.backend.close()


MEDIA_NOTE = ("images or audio in the messages are counted live only: no offline formula is applied to them, so "
              "their tokens are not in this count")


def sent_of(spec: SuiteSpec, counter: TokenCounter) -> tuple[Sent, str | None]:
    """How the suite's prompts are sent, for counting them as billed, and a note when part of it is counted live
    only (tool definitions no offline accounting covers)."""
    tools = spec.params.get("tools")
    tools = tuple(tools) if isinstance(tools, list) and tools else None
    sent = Sent(as_chat=text_as_chat(spec.model), tools=tools)
    note = None
    if tools and not counter.tools_counted(tools):
        note = (f"tool definitions ({len(tools)}) are counted live only: {counter.name} has no offline accounting for "
                "them (OpenAI function tools with tiktoken's cl100k_base or o200k_base, or a chat template that "
                "writes `tools`, have one)")
    return sent, note


def prepare(spec: SuiteSpec, keep: Callable[[str], bool] | None = None) -> Prepared:
    """Load, render and count a suite's prompts (no model needed); only those `keep` accepts when given."""
    prompt_set = load_prompt_set(spec.prompts)
    if keep is not None:
        prompt_set = replace(prompt_set, records=tuple(r for r in prompt_set.records if keep(r.id)))
    renderer = PromptRenderer(spec.template)
    counter = load_counter(spec.model.tokenizer)
    rendered = renderer.render_all(prompt_set.records)
    sent, _ = sent_of(spec, counter)
    return Prepared(prompt_set, renderer, counter, rendered, counter.count_all(rendered, sent, [r.id for r in prompt_set.records]),
                    spec.model.base_dir)


def count_tokens_only(spec: SuiteSpec, base_results: Mapping[str, PromptResult], progress: Progress | None = None,
                      keep: Callable[[str], bool] | None = None) -> tuple[Records, Meta]:
    """Tokens-only records, streaming the prompt set chunk by chunk: parse, render, count, keep one compact
    record per prompt (in columns). Prompt records and rendered text never pile up, so a million prompts fit."""
    stream = PromptStream(spec.prompts)
    renderer = PromptRenderer(spec.template)
    counter = load_counter(spec.model.tokenizer)
    sent, note = sent_of(spec, counter)
    table = TokensOnly(spec.model.pricing, base_results, note)
    workers = counting_workers()
    total = stream.estimate() if progress is not None else 0

    slices = [workers]

    def finish(chunk: list[Any], counts: Callable[[], list[int]]) -> None:
        began = time.perf_counter()
        ready = counts()
        # Balance the cores: when this thread had to wait, counting is the bottleneck and gets every core; when
        # the counts were already there, parsing is, and a counting thread fewer leaves it a core of its own.
        slices[0] = workers if time.perf_counter() - began > 0.002 else max(1, workers - 1)
        media = [MEDIA_NOTE if r.messages is not None and media_parts(r.messages) else None for r in chunk]
        table.add_chunk([r.id for r in chunk], [r.weight for r in chunk], ready,
                        [None if r.reference is None else counter.count(r.reference) for r in chunk],
                        media if any(media) else None)
        if progress is not None:
            progress(len(table), max(total, len(table) + 1), 0, 0)

    endpoint = spec.model.options.get("count_tokens") == "endpoint"
    if not endpoint and spec.model.backend in PRIVATE_TOKENIZERS and spec.model.tokenizer_default:
        raise BackendError(f"{spec.model.where}: {PRIVATE_TOKENIZERS[spec.model.backend]}'s tokenizer is not public, "
                           f"so tokens-only mode can't count suite '{spec.name}' offline. Set count_tokens: endpoint on "
                           "the model (the provider's free token-counting call, with its API key), or name a tokenizer "
                           "yourself (tokenizer: cl100k_base) to accept an approximation.")
    by_endpoint = EndpointCounting(spec) if endpoint else None
    if by_endpoint is not None:
        table.exact_input = True  # the provider's own count: nothing to carry over from the baseline
    # A small pipeline: while the encoders count one chunk, this thread parses and renders the next.
    pool = counting_pool(counter, stream.size(), workers)
    try:
        with bulk_counting():  # millions of acyclic objects: nothing for the GC to find
            inflight: deque[tuple[list[Any], Callable[[], list[int]]]] = deque()
            for chunk in stream.chunks():
                if keep is not None:
                    chunk = [r for r in chunk if keep(r.id)]
                rendered = renderer.render_all(chunk)
                inflight.append((chunk, by_endpoint.count_later(chunk, rendered) if by_endpoint is not None else
                                 counter.count_later(pool, rendered, slices[0], sent, [r.id for r in chunk])))
                if len(inflight) > 2:
                    finish(*inflight.popleft())
            while inflight:
                finish(*inflight.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a bad record or Ctrl-C: stop the encoders at once
        if by_endpoint is not None:
            by_endpoint.close()
    if progress is not None:
        progress(len(table), len(table), 0, 0)
    records = table.records()
    gc.freeze()  # what is kept now lives to the end of the run: later collections needn't scan it
    return records, Meta(renderer.hash, stream.sha256 or "", counter.name, (),
                         MappingProxyType(renderer.files(spec.model.base_dir)))


def run_suite(config: Config, spec: SuiteSpec, baseline: Document | None, tokens_only_mode: bool,
              deadline: float | None = None, progress: Progress | None = None, changed_only: bool = False,
              shard: tuple[int, int] | None = None) -> SuiteEntry:
    """Measure one suite and judge it against the baseline; returns its judged costgate/1 suite entry. With
    `shard` (k, n) only that shard's prompts are measured and the entry is not judged (its parts are joined
    and judged once, by the controller or `costgate merge`)."""
    base = baseline.suites.get(spec.name) if baseline else None
    entry, references = measure_suite(spec, base, tokens_only_mode, deadline, progress, changed_only, shard)
    if shard is not None:
        return entry
    return judge_entry(config, spec, entry, base, baseline is not None, references)


def judge_entry(config: Config, spec: SuiteSpec, entry: SuiteEntry, base: SuiteEntry | None, have_baseline: bool,
                references: Mapping[str, str]) -> SuiteEntry:
    """A measured entry with its verdict and its comparison with the baseline entry."""
    results = entry.prompts if isinstance(entry.prompts, Records) else list(entry.prompts.values())
    verdict = judge_suite(config, spec, results, base, have_baseline, entry, dict(references))
    where = prefix_moved(config, spec, entry, base)
    if where:
        verdict = replace(verdict, prefix_end=where)
    return replace(entry, verdict=verdict, baseline_template_hash=base.template_hash if base else None,
                   prompt_changes=prompt_changes(results, base.prompts if base else {}),
                   attribution=attribute(entry, base))


def prefix_moved(config: Config, spec: SuiteSpec, entry: SuiteEntry, base: SuiteEntry | None) -> str | None:
    """Where the shared prefix now ends, when the suite's cacheable prefix share fell since the baseline."""
    if spec.prefix_cache is None or base is None or spec.template is None:
        return None
    before, after = base.metrics.cacheable_prefix_share, entry.metrics.cacheable_prefix_share
    if before is None or after is None or after >= before:
        return None
    from ..inputs.cache_share import prefix_end
    from ..inputs.render import _relative

    prep = prepare(spec)
    return prefix_end(spec.template, prep.rendered, lambda origin: _relative(origin, config.path.parent))


def measure_suite(spec: SuiteSpec, base: SuiteEntry | None, tokens_only_mode: bool, deadline: float | None = None,
                  progress: Progress | None = None, changed_only: bool = False,
                  shard: tuple[int, int] | None = None) -> tuple[SuiteEntry, dict[str, str]]:
    """One suite measured (or one shard of it), unjudged; and the prompts' references for the quality rule."""
    keep = None if shard is None else (lambda pid: shard_of(pid, shard[1]) == shard[0])
    base_results = base.prompts if base else {}
    price = spec.model.pricing
    mode = "tokens-only" if tokens_only_mode or spec.tokens_only else "replay"
    load_s = wall_s = 0.0
    concurrency = 1
    references: dict[str, str] = {}
    results: Records | list[PromptResult]
    probe: Any = None  # the machine-speed calibration, timed between requests (replay of a local model)
    if mode == "tokens-only":
        results, meta = count_tokens_only(spec, base_results, progress, keep)
        fingerprint = {**environment(), "backend": spec.model.backend, "mode": mode}
    else:
        prep = prepare(spec, keep)
        meta, references = prep.meta(), prep.references()
        requests = prep.requests(spec)
        identity = model_identity(spec.model)
        hashes = {request.id: request_hash(identity, request) for request, _, _ in requests}
        reused: dict[str, PromptResult] = {}
        if (changed_only or spec.replay == "changed") and base is not None:
            requests, reused = split(requests, hashes, base_results, lambda record: price_now(spec, record))
        replayed: list[PromptResult] = []
        fingerprint = dict(base.fingerprint) if base is not None else {**environment(), "mode": mode}
        if requests:
            started = time.perf_counter()
            backend = create_backend(spec.model)
            load_s = time.perf_counter() - started
            if spec.calibration_max_factor is not None:
                from ..replay.probe import Probe

                probe = Probe()
            try:
                replayed, wall_s = replay(backend, requests, prep.counter, price, spec.warmup, spec.repeats,
                                          suite_deadline(spec, budget_now() - load_s, deadline), progress,
                                          routes=spec.routes if spec.routing_default else None, probe=probe,
                                          count_without_usage=spec.without_usage == "tokenizer")
                fingerprint = {**environment(), **backend.fingerprint(), "mode": mode}
                concurrency = max(1, int(getattr(backend, "concurrency", 1)))
            finally:
                backend.close()
        by_id = {r.id: replace(r, request_hash=hashes[r.id]) for r in replayed}
        by_id.update(reused)
        results = [by_id[r.id] for r in prep.prompt_set.records if r.id in by_id]
        if spec.prefix_cache is not None:  # shared with any prompt of the suite, not only of this shard
            shares = prefix_shares(spec, prep if keep is None else prepare(spec))
            results = [replace(r, cacheable_tokens=shares.get(r.id)) for r in results]
    if mode == "tokens-only" and spec.prefix_cache is not None:
        assert isinstance(results, Records)  # tokens-only records are column-wise
        results = with_prefix_shares(spec, results, prefix_shares(spec, prepare(spec)))
    entry = make_entry(spec, meta, results, mode, fingerprint, load_s, wall_s, concurrency)
    if probe is not None and probe.samples:
        from ..replay.probe import WORKLOAD
        from ..store.document import Calibration

        entry = replace(entry, calibration=Calibration(WORKLOAD, tuple(probe.samples)))
    return entry, references


def price_now(spec: SuiteSpec, record: PromptResult) -> TokenPrice | GpuPrice | None:
    """The price a record is billed at under this run's config (a routed suite's: its answering model's)."""
    if spec.routing_default and spec.routes is not None:
        found = route(spec.routes, record.served_by) if record.served_by else None
        return found[1] if found is not None else None
    return spec.model.pricing


def prefix_shares(spec: SuiteSpec, prep: Prepared) -> dict[str, int]:
    """Each prompt's input tokens a prefix cache could serve under the suite's prefix_cache rule."""
    from ..inputs.cache_share import cacheable_tokens, token_ids

    assert spec.prefix_cache is not None
    sent, _ = sent_of(spec, prep.counter)
    tokens = token_ids(prep.counter, prep.rendered, sent.as_chat, sent.tools)
    return dict(zip((r.id for r in prep.prompt_set.records), cacheable_tokens(tokens, spec.prefix_cache)))


def with_prefix_shares(spec: SuiteSpec, records: Records, shares: Mapping[str, int]) -> Records:
    """Tokens-only records with their cacheable tokens, and, when the pricing has a cached-input price, the
    cost those tokens would have at it: the projected effect of the prompt layout, before any call."""
    from ..config.specs import TokenPrice
    from ..pricing.prices import record_usage, request_cost

    columns = dict(records.columns)
    cacheable = [shares.get(pid) for pid in records.ids]
    columns["cacheable_tokens"] = cacheable
    price = spec.model.pricing
    projected = Records(records.ids, columns)
    if isinstance(price, TokenPrice) and price.cached_input_per_1m is not None:  # the layout's cache reads, priced
        columns["cost"] = [request_cost(price, replace(record_usage(r), cache_read_tokens=min(c or 0, r.input_tokens)),
                                        None) if r.input_tokens is not None and r.output_tokens is not None else r.cost
                           for r, c in zip(projected.values(), cacheable)]
        columns["cached_tokens"] = [None if r.input_tokens is None else min(c or 0, r.input_tokens)
                                    for r, c in zip(projected.values(), cacheable)]
    return Records(records.ids, columns)


def suite_deadline(spec: SuiteSpec, started: float, deadline: float | None) -> float | None:
    """The earlier of the run's deadline and the suite's own time budget."""
    if spec.time_budget_s is None:
        return deadline
    own = started + float(spec.time_budget_s)
    return own if deadline is None else min(deadline, own)


def param_texts(params: Mapping[str, Any]) -> dict[str, str]:
    """Each generation param as compact JSON (long ones cut, with a hash of the whole), so a report can say
    'max_tokens 120 → 512' or that the tool definitions changed."""
    import hashlib
    import json

    out = {}
    for name, value in sorted(params.items()):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        if len(text) > 120:
            text = text[:80] + "…#" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        out[str(name)[:100]] = text
    return out


def make_entry(spec: SuiteSpec, meta: Meta, results: Sequence[PromptResult] | Records, mode: str,
               fingerprint: dict[str, str], load_s: float, wall_s: float, concurrency: int = 1) -> SuiteEntry:
    """A suite's costgate/1 entry before judging: what was measured, where, with which templates and prices."""
    summary = aggregate(results, spec.requests_per_month, default_model=spec.routing_default)
    prompts: Mapping[str, PromptResult]
    if isinstance(results, Records):
        prompts, measured, errors = results, set(results.ids), list(results.column("error"))
    else:
        prompts = MappingProxyType({r.id: r for r in results})
        measured, errors = set(prompts), [r.error for r in results]
    return SuiteEntry(
        model=spec.model.name, backend=spec.model.backend, mode=mode, template_hash=meta.template_hash,
        template_files=meta.template_files, params=MappingProxyType(param_texts(spec.params)),
        prompt_set=MappingProxyType({"path": spec.prompts.name, "sha256": meta.prompt_set_sha256}),
        tokenizer=meta.tokenizer, pricing=describe(spec.model.pricing), requests_per_month=spec.requests_per_month,
        fingerprint=MappingProxyType(fingerprint), metrics=summary.metrics(),
        latency=MappingProxyType(dict(summary.latency)),
        prompts=prompts, errors=tuple(distinct(e for e in errors if e)),
        unmeasured=tuple(i for i in meta.ids if i not in measured),
        repeats=spec.repeats, load_s=load_s, wall_s=wall_s, concurrency=concurrency,
        default_model=spec.routing_default, served=MappingProxyType(
            {name: decimal_text(share) for name, share in summary.served.items()}))


def rejudge(config: Config, spec: SuiteSpec, entry: SuiteEntry, base: SuiteEntry, source: str,
            references: dict[str, str]) -> SuiteEntry:
    """Judge an already measured suite entry against another entry (a live baseline)."""
    results = list(entry.prompts.values())
    verdict = judge_suite(config, spec, results, base, True, entry, references)
    return replace(entry, verdict=verdict, baseline_template_hash=base.template_hash,
                   prompt_changes=prompt_changes(results, base.prompts), baseline_source=source,
                   attribution=attribute(entry, base))
