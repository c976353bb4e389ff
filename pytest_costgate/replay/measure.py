"""Replay prompts through a backend: one record per prompt, timed, counted and priced."""
from __future__ import annotations

import hashlib
import math
import re
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from ..config.specs import GpuPrice, TokenPrice
from ..inputs.tokens import TokenCounter
from ..pricing.prices import request_cost
from ..pricing.usage import Usage
from ..safety.deadlines import budget_now
from ..safety.redact import redact, shorten
from ..store.records import PROMPT_COLUMNS, PromptResult, Records
from .backends import NO_USAGE, Backend, Completion, Request, needs_usage

CONSECUTIVE_FAILURES = 3  # after this many in a row, the endpoint is taken to be down
OUTPUT_KEEP = 2000
MAX_TOKENS = 100_000_000  # per request; larger counts are not believed
MAX_MS = 86_400_000.0  # a timing over a day is not a timing


Progress = Callable[[int, int, int, int], None]  # (requests done, total, errors, output tokens)


class _Pacer:
    """At most `rate` sends a second across every worker (max_requests_per_s)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            slot = max(now, self.next)
            self.next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


def replay(backend: Backend, requests: Sequence[tuple[Request, int, Decimal]], counter: TokenCounter,
           price: TokenPrice | GpuPrice | None, warmup: int = 0, repeats: int = 1,
           deadline: float | None = None, progress: Progress | None = None, *,
           routes: Mapping[str, tuple[str, TokenPrice | GpuPrice | None]] | None = None,
           probe: Callable[[], None] | None = None, count_without_usage: bool = False
           ) -> tuple[list[PromptResult], float]:
    """Replay (request, rendered_tokens, weight) after `warmup` discarded calls; returns records and wall seconds.

    A backend with `concurrency` N keeps N requests in flight (each timed on its own); one with
    `batch_size` sends batches. With `repeats` > 1 the whole set is replayed in rounds (so drift hits
    every prompt alike) and a prompt's timings are the medians of its runs. Past `deadline` (a
    safety.deadlines.budget_now() value) nothing more is sent: prompts not measured by then are left out. A `probe` (the
    machine-speed calibration) runs after each sequential call, interleaved with the prompts.
    """
    size = max(1, int(getattr(backend, "batch_size", 1)))
    send = getattr(backend, "complete_batch", None) if size > 1 else None
    step = size if send else 1
    workers = 1 if send else max(1, int(getattr(backend, "concurrency", 1)))
    pacer = _Pacer(getattr(backend, "max_requests_per_s", None))
    chunks = [requests[i:i + step] for i in range(0, len(requests), step)]
    for chunk in chunks[: -(-min(warmup, len(requests)) // step)]:
        call(backend, [r for r, _, _ in chunk], send)
    runs: dict[str, list[Completion]] = {}
    total = len(requests) * repeats
    tally = [0, 0, 0]  # done, errors, output tokens (for progress)

    def report(done: list[Completion]) -> None:
        tally[0] += len(done)
        tally[1] += sum(1 for c in done if c.error)
        tally[2] += sum(c.output_tokens or 0 for c in done)
        if progress is not None:
            progress(tally[0], total, tally[1], tally[2])

    start = time.perf_counter()
    for _ in range(repeats):
        began = time.perf_counter()
        finished = _round(chunks, workers, lambda chunk: _probed(call(backend, [r for r, _, _ in chunk], send),
                                                                 probe if workers == 1 else None),
                          deadline, pacer, report)
        if workers > 1:  # N in flight share the device: each request is charged its share of the round's wall time
            finished = _share_busy(finished, time.perf_counter() - began)
        for chunk, done in zip(chunks, finished):
            if done is not None:
                for (request, _, _), completion in zip(chunk, done):
                    runs.setdefault(request.id, []).append(completion)
        if deadline is not None and budget_now() > deadline:
            break
    wall = time.perf_counter() - start
    return [result_from(r.id, w, n, _combine(runs[r.id]), counter, price, len(runs[r.id]), routes,
                        None if count_without_usage else needs_usage(r.params))
            for r, n, w in requests if r.id in runs], wall


def _probed(done: list[Completion], probe: Callable[[], None] | None) -> list[Completion]:
    if probe is not None:
        probe()
    return done


class _RoundState:
    """Where a round is, shared by its workers under their lock: the next chunk, failures in a row, and the
    answer every chunk gets once the endpoint is taken to be down."""

    def __init__(self) -> None:
        self.next = 0
        self.failures = 0
        self.tripped: Completion | None = None


def _round(chunks: Sequence[Sequence[Any]], workers: int, send: Callable[[Sequence[Any]], list[Completion]],
           deadline: float | None, pacer: _Pacer, report: Callable[[list[Completion]], None]
           ) -> list[list[Completion] | None]:
    """One pass over the chunks with `workers` in flight; None for chunks the deadline left unsent. After
    CONSECUTIVE_FAILURES failures in a row (in completion order) the rest is failed without sending."""
    results: list[list[Completion] | None] = [None] * len(chunks)
    lock = threading.Lock()
    state = _RoundState()

    def work() -> None:
        while True:
            with lock:
                index = state.next
                if index >= len(chunks) or (deadline is not None and budget_now() > deadline):
                    return
                state.next = index + 1
                tripped = state.tripped
            if tripped is not None:
                done = [tripped] * len(chunks[index])
            else:
                pacer.wait()
                done = send(chunks[index])
            with lock:
                results[index] = done
                for completion in done:
                    state.failures = state.failures + 1 if completion.error else 0
                    if state.failures >= CONSECUTIVE_FAILURES and state.tripped is None:
                        state.tripped = Completion(error=f"not sent: the last {state.failures} requests failed "
                                                         f"({completion.error})")
                report(done)

    if workers == 1:
        work()
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="costgate-replay") as pool:
            for future in [pool.submit(work) for _ in range(workers)]:
                future.result()
    return results


def _share_busy(finished: list[list[Completion] | None], wall_s: float) -> list[list[Completion] | None]:
    """busy_ms for concurrent requests: the round's wall time split in proportion to each request's own time,
    so the shares add up to the wall time (GPU pricing then costs usd/h x wall / completed on average)."""
    timed = [c for done in finished if done for c in done if c.error is None and c.busy_ms is None and c.e2e_ms]
    total = sum(c.e2e_ms or 0.0 for c in timed)
    if not total:
        return finished
    scale = wall_s * 1000 / total
    shared = {id(c) for c in timed}
    return [None if done is None else [replace(c, busy_ms=(c.e2e_ms or 0.0) * scale) if id(c) in shared else c
                                       for c in done] for done in finished]


def call(backend: Backend, requests: Sequence[Request], send: Any = None) -> list[Completion]:
    """Send requests (a batch through `send`, else one); whatever a backend raises fails these requests only."""
    try:
        done = list(send(list(requests))) if send else [backend.complete(requests[0])]
        if len(done) != len(requests) or not all(isinstance(c, Completion) for c in done):
            raise TypeError(f"expected {len(requests)} Completion(s), got {type(done).__name__} of {len(done)}")
        return done
    except Exception as exc:  # noqa: BLE001 - a backend (ours or a plugin's) must not end the session
        message = shorten(f"the backend raised {type(exc).__name__}: {exc}", 400)
        return [Completion(error=message) for _ in requests]


def _combine(runs: list[Completion]) -> Completion:
    """One completion standing for several runs: the first run's text and counts, median timings."""
    first = runs[0]
    ok = [c for c in runs if c.error is None]
    if first.error is not None or len(ok) < 2:
        return first

    def median(name: str) -> float | None:
        values = [getattr(c, name) for c in ok if getattr(c, name) is not None]
        return statistics.median(values) if values else None

    return replace(first, e2e_ms=median("e2e_ms"), ttft_ms=median("ttft_ms"), busy_ms=median("busy_ms"),
                   e2e_runs=tuple(c.e2e_ms for c in ok if c.e2e_ms is not None))


# a dated snapshot's name: the model's, then -YYYY-MM-DD, -YYYYMMDD, or four digits (-MMDD, -YYMM)
_SNAPSHOT = re.compile(r"^(?P<model>.+?)-(?:20\d\d-[01]\d-[0-3]\d|20\d\d[01]\d[0-3]\d|\d{4})$")


def route(routes: Mapping[str, tuple[str, TokenPrice | GpuPrice | None]], served: str
          ) -> tuple[str, TokenPrice | GpuPrice | None] | None:
    """The models: entry (name, pricing) a served model name belongs to: by exact name, else the known id it is
    a dated snapshot of ('gpt-4o-mini-2024-07-18', 'gpt-4-0613' -> the entry for 'gpt-4o-mini', 'gpt-4'); never
    'gpt-4-32k' as 'gpt-4': another model."""
    if served in routes:
        return routes[served]
    snapshot = _SNAPSHOT.match(served)
    return routes.get(snapshot["model"]) if snapshot else None


def result_from(pid: str, weight: Decimal, rendered: int, done: Completion, counter: TokenCounter,
                price: TokenPrice | GpuPrice | None, runs: int = 1,
                routes: Mapping[str, tuple[str, TokenPrice | GpuPrice | None]] | None = None,
                needs: str | None = None) -> PromptResult:
    """Turn a backend's Completion into a record; missing token counts come from the tokenizer, except for a
    request that asked for what only the server's usage counts (`needs`: 'reasoning'), which then failed. In a
    routed suite (`routes`: model name -> pricing) a request is priced as the model that answered it."""
    if done.error:
        return PromptResult(pid, weight, rendered, error=shorten(done.error, 500), e2e_ms=_finite(done.e2e_ms))
    served = done.served_by if isinstance(done.served_by, str) else None
    if routes is not None and served is None:
        return PromptResult(pid, weight, rendered, e2e_ms=_finite(done.e2e_ms),
                            error="routed suite: the response did not say which model answered it (a python "
                                  "function returns {'text', 'model'}; a server sets the response's 'model')")
    if routes is not None and served is not None:
        found = route(routes, served)
        if found is None or found[1] is None:
            why = ("which is not under models: (by name or by its model: id); add it with its pricing" if found is None
                   else "whose models: entry has no pricing; add its pricing")
            return PromptResult(pid, weight, rendered, e2e_ms=_finite(done.e2e_ms), served_by=redact(served)[:200],
                                error=shorten(f"served by model '{redact(served)[:80]}', {why} so its requests "
                                              "can be priced", 500))
        served, price = found
    elif routes is None:
        served = None  # which model answered matters only to a routed suite
    text = done.text if isinstance(done.text, str) else str(done.text)
    billed = _billed(done, rendered, text, counter, needs)
    if isinstance(billed, str):
        return PromptResult(pid, weight, rendered, e2e_ms=_finite(done.e2e_ms), error=billed)
    usage, source, note = billed
    input_tokens, output_tokens = usage.input_tokens or 0, usage.output_tokens or 0
    ttft, e2e, busy = _finite(done.ttft_ms), _finite(done.e2e_ms), _finite(done.busy_ms)
    if ttft is not None and e2e is not None and ttft > e2e:  # a first token after the last is not a timing
        note, ttft = f"time to first token {ttft:.1f} ms reported after the whole answer ({e2e:.1f} ms); dropped", None
    tpot = None
    if ttft is not None and e2e is not None and output_tokens > 1:
        tpot = (e2e - ttft) / (output_tokens - 1)
    return PromptResult(
        id=pid, weight=weight, rendered_tokens=rendered, input_tokens=input_tokens,
        output_tokens=output_tokens, cached_tokens=usage.cache_read_tokens, token_source=source,
        cache_write_tokens=usage.cache_write_tokens, cache_write_1h_tokens=usage.cache_write_1h_tokens,
        reasoning_tokens=usage.output_reasoning_tokens, usage_details=MappingProxyType(dict(usage.details))
        if usage.details else None,
        ttft_ms=ttft, e2e_ms=e2e, tpot_ms=tpot, busy_ms=busy,
        cost=request_cost(price, usage, busy if busy is not None else e2e),
        output=redact(text)[:OUTPUT_KEEP], output_sha=hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16],
        runs=runs, e2e_runs=tuple(v for v in done.e2e_runs if _finite(v) is not None) if done.e2e_runs else None,
        note=note, served_by=None if served is None else redact(served)[:200],
    )


def _billed(done: Completion, rendered: int, text: str, counter: TokenCounter, needs: str | None
            ) -> tuple[Usage, str, str | None] | str:
    """(the usage to bill, its source, a note) for an answer, or the error that fails it: the server's usage when
    it is whole and consistent, else the tokenizer's counts of the prompt and the visible answer."""
    note = done.note
    reported = done.usage
    if reported is None and (done.input_tokens, done.output_tokens, done.cached_tokens) != (None, None, None):
        reported = Usage(done.input_tokens, done.output_tokens, cache_read_tokens=done.cached_tokens)
    if reported is not None:
        values = [getattr(reported, f.name) for f in fields(reported) if f.name != "details"]
        bad = [v for v in (*values, *reported.details.values()) if v is not None and _count(v) is None]
        problems = reported.problems()
        if bad or problems:
            shown = f"({reported.input_tokens!r}, {reported.output_tokens!r})" if bad else f"({problems[0]})"
            note = (f"the backend's token counts {shorten(shown, 120)} are not whole numbers from 0 to {MAX_TOKENS:,} "
                    "that add up; counted with the tokenizer instead")
            reported = None
    if reported is not None and reported.input_tokens is not None and reported.output_tokens is not None:
        cached = reported.cache_read_tokens
        if cached is not None and cached > reported.input_tokens:
            reported = replace(reported, cache_read_tokens=reported.input_tokens)
        return reported, done.token_source, note
    if done.usage_expected and needs:
        return (f"the server sent no usage, and the request asks for {needs}, whose tokens no tokenizer counts "
                "offline; set without_usage: tokenizer on the suite to count the visible text alone")
    if done.usage_expected and note is None:
        note = NO_USAGE
    partial = reported or Usage()
    usage = Usage(partial.input_tokens if partial.input_tokens is not None else rendered,
                  partial.output_tokens if partial.output_tokens is not None else
                  sum(counter.count(p) for p in done.outputs) if done.outputs else counter.count(text))
    return usage, "tokenizer", note


def _count(value: Any) -> int | None:
    """A token count we believe: a whole number from 0 to MAX_TOKENS."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS else None


def _finite(value: Any) -> float | None:
    """A timing we believe: a finite, non-negative number of milliseconds, under a day."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value) if not isinstance(value, int) or abs(value) < 10**15 else math.inf
    return number if math.isfinite(number) and 0 <= number <= MAX_MS else None


CARRIED = ("cached_tokens", "cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens", "usage_details")


class TokensOnly:
    """Tokens-only records, built a column at a time: exact input tokens; the rest of each prompt's billed usage
    (output, reasoning, cache reads and writes, other parts) from the baseline, or output tokens from the prompt's
    reference. The baseline's per-prompt gap between server-counted and rendered input tokens is carried over, so
    a server that adds its own chat template does not show up as a template change; and so are its cache reads,
    so an unchanged suite whose baseline hit the cache costs what it cost then."""

    def __init__(self, price: TokenPrice | GpuPrice | None, base: Mapping[str, PromptResult],
                 note: str | None = None) -> None:
        self.price = price
        self.note = note  # on every record: something the counts could not include
        self.notes: list[str | None] | None = None  # per record, once a prompt has a note of its own
        self.exact_input = False  # the input counts are the provider's: no baseline gap to carry over
        self._base_ids = list(base)
        names = ("input_tokens", "rendered_tokens", "output_tokens", "error", "cost")
        self._base = tuple(_base_column(base, n) for n in names)  # looked up by position in the baseline
        carried = {name: _base_column(base, name) for name in CARRIED}
        self._carried = {name: column for name, column in carried.items() if column.count(None) != len(column)}
        self._where: dict[str, int] | None = None  # id -> that position, made once a prompt is out of place
        self.ids: list[str] = []
        self.weights: list[Decimal] = []
        self.rendered: list[int] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self.sources: list[str] = []
        self.costs: list[Decimal | None] = []
        self.extra: dict[str, list[Any]] = {name: [] for name in self._carried}
        self._cost: dict[tuple[Any, ...], Decimal | None] = {}
        self._gpu, self._tokens = isinstance(price, GpuPrice), isinstance(price, TokenPrice)

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, pid: str, weight: Decimal, rendered: int, reference_tokens: int | None) -> None:
        self.add_chunk([pid], [weight], [rendered], [reference_tokens])

    def add_chunk(self, pids: list[str], weights: list[Decimal], rendered: list[int],
                  references: list[int | None], notes: list[str | None] | None = None) -> None:
        """Records for a chunk of prompts: exact input tokens, the rest from the baseline or the reference;
        `notes`: a prompt's own note (what its count could not include)."""
        start = len(self.ids)
        if notes is not None and any(notes):
            self.notes = (self.notes or [self.note] * start) + [n or self.note for n in notes]
        elif self.notes is not None:
            self.notes += [self.note] * len(pids)
        where: Sequence[int | None]
        if self._base_ids[start:start + len(pids)] == pids:  # the baseline's prompts in its order: by position
            where = range(start, start + len(pids))
        else:
            if self._where is None:
                self._where = {pid: i for i, pid in enumerate(self._base_ids)}
            where = [self._where.get(pid) for pid in pids]
        base_in, base_rendered, base_out, base_error, base_cost = self._base
        add_input, add_output, add_source, add_cost = (self.inputs.append, self.outputs.append,
                                                       self.sources.append, self.costs.append)
        known, gpu, tokens, carried = self._cost, self._gpu, self._tokens, self._carried
        for at, input_tokens, reference_tokens in zip(where, rendered, references):
            output_tokens, source = 0, "tokenizer+none"
            cost: Decimal | None = None
            parts: tuple[Any, ...] = ()
            if at is not None and base_error[at] is None:
                if base_in[at] is not None and not self.exact_input:
                    input_tokens += base_in[at] - base_rendered[at]
                output_tokens, source = base_out[at] or 0, "tokenizer+baseline"
                if gpu:
                    cost = base_cost[at]  # GPU time can't be known without running; carry the baseline's
                if carried:
                    parts = tuple(column[at] for column in carried.values())
            elif reference_tokens is not None:
                output_tokens, source = reference_tokens, "tokenizer+reference"
            if carried:
                parts = parts or (None,) * len(carried)
                for column, value in zip(self.extra.values(), parts):
                    column.append(value)
            if tokens:
                key = (input_tokens, output_tokens, *parts)
                cost = known.get(key)
                if cost is None:
                    cost = known[key] = request_cost(self.price, self._usage(input_tokens, output_tokens, parts), None)
            add_input(input_tokens)
            add_output(output_tokens)
            add_source(source)
            add_cost(cost)
        self.ids += pids
        self.weights += weights
        self.rendered += rendered

    def _usage(self, input_tokens: int, output_tokens: int, parts: tuple[Any, ...]) -> Usage:
        got = dict(zip(self._carried, parts))
        cached = got.get("cached_tokens")
        return Usage(input_tokens, output_tokens, cache_read_tokens=None if cached is None else min(cached, input_tokens),
                     cache_write_tokens=got.get("cache_write_tokens"),
                     cache_write_1h_tokens=got.get("cache_write_1h_tokens"),
                     output_reasoning_tokens=got.get("reasoning_tokens"),
                     details=got.get("usage_details") or MappingProxyType({}))

    def records(self) -> Records:
        n = len(self.ids)
        nothing: list[Any] = [None] * n
        columns = {name: nothing for name in PROMPT_COLUMNS[1:]}
        columns.update(weight=self.weights, rendered_tokens=self.rendered, input_tokens=self.inputs,
                       output_tokens=self.outputs, token_source=self.sources, cost=self.costs, reused=[False] * n)
        columns.update(self.extra)
        if self.notes is not None:
            columns["note"] = self.notes
        elif self.note is not None:
            columns["note"] = [self.note] * n
        if "cached_tokens" in self.extra:  # a cache read never exceeds the input it is part of
            columns["cached_tokens"] = [None if c is None else min(c, i) for c, i in zip(self.extra["cached_tokens"],
                                                                                          self.inputs)]
        return Records(self.ids, columns)


def tokens_only(pid: str, weight: Decimal, rendered: int, previous: PromptResult | None,
                reference_tokens: int | None, price: TokenPrice | GpuPrice | None) -> PromptResult:
    """One tokens-only record (see TokensOnly)."""
    table = TokensOnly(price, {pid: previous} if previous is not None else {})
    table.add(pid, weight, rendered, reference_tokens)
    return table.records()[pid]


def _base_column(base: Mapping[str, PromptResult], name: str) -> list[Any]:
    return list(base.column(name)) if isinstance(base, Records) else [getattr(r, name) for r in base.values()]


def replay_interleaved(base: Backend, head: Backend, requests: Sequence[tuple[Request, Request, int, int, Decimal]],
                       counters: tuple[TokenCounter, TokenCounter],
                       prices: tuple[TokenPrice | GpuPrice | None, TokenPrice | GpuPrice | None],
                       warmup: int = 0, deadline: float | None = None) -> tuple[list[PromptResult], list[PromptResult]]:
    """Paired replay: for each prompt base, head, head, base back to back, so drift and the machine's
    momentary speed hit both sides of every pair alike. Each side's timings are its two runs' medians.

    `requests` holds (base request, head request, base rendered tokens, head rendered tokens, weight).
    """
    for base_request, head_request, _, _, _ in list(requests)[:warmup]:
        call(base, [base_request])
        call(head, [head_request])
    base_results, head_results = [], []
    for base_request, head_request, base_tokens, head_tokens, weight in requests:
        if deadline is not None and budget_now() > deadline:
            break
        (b1,), (h1,), (h2,), (b2,) = (call(base, [base_request]), call(head, [head_request]),
                                      call(head, [head_request]), call(base, [base_request]))
        base_results.append(result_from(base_request.id, weight, base_tokens, _combine([b1, b2]), counters[0],
                                        prices[0], 2))
        head_results.append(result_from(head_request.id, weight, head_tokens, _combine([h1, h2]), counters[1],
                                        prices[1], 2))
    return base_results, head_results
