"""Per-prompt records: one prompt's measurement (PromptResult), many of them column-wise (Records), and their
stored row or column form. The document (document.py) holds them per suite.
"""
from __future__ import annotations

import operator
from collections import abc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class PromptResult:
    """What one prompt measured (tokens exact, timings in ms, cost in USD)."""

    id: str
    weight: Decimal
    rendered_tokens: int
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    token_source: str = "tokenizer"
    ttft_ms: float | None = None
    e2e_ms: float | None = None
    tpot_ms: float | None = None
    busy_ms: float | None = None
    runs: int | None = None
    e2e_runs: tuple[float, ...] | None = None
    cost: Decimal | None = None
    output: str | None = None
    output_sha: str | None = None
    error: str | None = None
    note: str | None = None
    request_hash: str | None = None  # what was sent (model, endpoint, params, rendered prompt), for reuse
    reused: bool = False  # copied from the baseline, not replayed: never in latency statistics
    cacheable_tokens: int | None = None  # input tokens a prefix cache could serve (the suite's prefix_cache rule)
    served_by: str | None = None  # the model a router sent the request to (routed suites)
    cache_write_tokens: int | None = None  # input tokens written to the provider's cache (all lifetimes)
    cache_write_1h_tokens: int | None = None  # the part written to a one-hour cache
    reasoning_tokens: int | None = None  # output tokens spent on reasoning (part of output_tokens)
    usage_details: Mapping[str, int] | None = None  # other reported parts: modality, tool-use prompt (usage keys)


PROMPT_COLUMNS = tuple(f.name for f in fields(PromptResult))
TEXT_COLUMNS = frozenset({"id", "output", "error", "note", "served_by"})  # free text: what redaction looks at
_ROW = operator.attrgetter(*PROMPT_COLUMNS)


_WEIGHT, _COST, _RUNS, _DETAILS = (PROMPT_COLUMNS.index(n) for n in ("weight", "cost", "e2e_runs", "usage_details"))
# added after the first stored documents: left out of the stored rows when a suite has none of them
LATE_COLUMNS = frozenset({"cache_write_tokens", "cache_write_1h_tokens", "reasoning_tokens", "usage_details"})
FIELDS = PROMPT_COLUMNS[1:]
REQUIRED_COLUMNS = frozenset({"id", "weight", "rendered_tokens", "token_source", "reused"})  # absent isn't null
ROWS_LIMIT = 10_000  # up to this many prompts are stored a row per line; more, a column per list


class Records(Mapping[str, PromptResult]):
    """Per-prompt results stored column-wise: one list per field, a PromptResult built only when one is asked for.

    A million prompts as objects cost ~400 bytes and a microsecond or two each to make; as columns they are
    a few pointers each, and sums, subsets and the stored rows are computed a column at a time.
    """

    __slots__ = ("ids", "columns", "_index")

    def __init__(self, ids: list[str], columns: Mapping[str, Sequence[Any]]) -> None:
        self.ids = ids
        self.columns = dict(columns)
        self._index: dict[str, int] | None = None

    @classmethod
    def of(cls, results: Iterable[PromptResult]) -> Records:
        results = list(results)
        if not results:
            return cls([], {name: [] for name in FIELDS})
        table = list(zip(*map(_ROW, results)))
        return cls(list(table[0]), dict(zip(FIELDS, table[1:])))

    def column(self, name: str) -> Sequence[Any]:
        return self.ids if name == "id" else self.columns[name]

    def index(self) -> dict[str, int]:
        if self._index is None:
            self._index = {pid: i for i, pid in enumerate(self.ids)}
        return self._index

    def __getitem__(self, pid: str) -> PromptResult:
        i = self.index()[pid]
        return PromptResult(pid, *(self.columns[name][i] for name in FIELDS))

    def __contains__(self, pid: object) -> bool:
        return pid in self.index()

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    def values(self) -> Any:
        return _Values(self)

    def select(self, positions: Sequence[int]) -> Records:
        """The records at these row positions, in that order."""
        if len(positions) == len(self.ids) and all(i == p for i, p in enumerate(positions)):
            return self
        pick = operator.itemgetter(*positions) if positions else None

        def take(values: Sequence[Any]) -> list[Any]:
            if pick is None:
                return []
            chosen = pick(values)
            return list(chosen) if len(positions) > 1 else [chosen]

        return Records(take(self.ids), {name: take(values) for name, values in self.columns.items()})

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Records):
            return self.ids == other.ids and all(list(self.columns[n]) == list(other.columns[n]) for n in FIELDS)
        return abc.Mapping.__eq__(self, other)

    __hash__ = None  # type: ignore[assignment]


class _Values:
    """records.values(): PromptResults made one at a time, with a length."""

    def __init__(self, records: Records) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[PromptResult]:
        records = self.records
        columns = [records.columns[name] for name in FIELDS]
        return (PromptResult(*row) for row in zip(records.ids, *columns))


def prompt_rows(prompts: Iterable[PromptResult] | Records) -> dict[str, Any]:
    """Per-prompt records in the compact columnar form: one row per prompt, values in PROMPT_COLUMNS order."""
    if isinstance(prompts, Records):
        return _rows_of(prompts)
    rows = []
    one = Decimal(1)
    for record in prompts:
        row = list(_ROW(record))
        weight, cost, runs = row[_WEIGHT], row[_COST], row[_RUNS]
        row[_WEIGHT] = "1" if weight == one else format(weight.normalize(), "f")
        if cost is not None:
            row[_COST] = format(cost.normalize(), "f")
        if runs is not None:
            row[_RUNS] = list(runs)
        if row[_DETAILS] is not None:
            row[_DETAILS] = dict(row[_DETAILS])
        rows.append(row)
    return _without_late_nulls(list(PROMPT_COLUMNS), rows)


def _without_late_nulls(columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    """The rows, less the columns added in later versions that hold only nulls here: a baseline that uses none
    of what they record stays as it was written (a one-line diff per changed prompt, not per prompt)."""
    late = [i for i, name in enumerate(columns) if name in LATE_COLUMNS and all(row[i] is None for row in rows)]
    if not late or not rows:
        return {"columns": columns, "rows": rows}
    keep = [i for i in range(len(columns)) if i not in late]
    pick = operator.itemgetter(*keep)
    return {"columns": list(pick(columns)), "rows": [list(pick(row)) for row in rows]}


def _rows_of(records: Records) -> dict[str, Any]:
    """The stored rows of column-wise records, converting a column at a time (weights: a few distinct values)."""
    weights: dict[Any, str] = {}
    columns = []
    for name in FIELDS:
        values = records.columns[name]
        if name == "weight":
            values = [weights[w] if w in weights else weights.setdefault(w, "1" if w == 1 else
                                                                          format(w.normalize(), "f")) for w in values]
        elif name == "cost":  # each distinct cost formatted once (zeros apart: 0 and -0 are equal)
            texts = {c: format(c.normalize(), "f") for c in set(values) if c}
            values = [texts[c] if c else None if c is None else format(c.normalize(), "f") for c in values]
        elif name == "e2e_runs" and values.count(None) != len(values):
            values = [None if r is None else list(r) for r in values]
        elif name == "usage_details" and values.count(None) != len(values):
            values = [None if d is None else dict(d) for d in values]
        columns.append(values)
    if len(records.ids) > ROWS_LIMIT:  # column-major: a diff of this many prompts is no review, speed is
        # a column of nulls only (no timings in a tokens-only run, no outputs...) is left out: absent means null
        kept = [(name, values) for name, values in zip(FIELDS, columns)
                if name in REQUIRED_COLUMNS or values.count(None) != len(values)]
        return {"columns": ["id", *(name for name, _ in kept)], "data": [list(records.ids), *(list(v) for _, v in kept)]}
    return _without_late_nulls(list(PROMPT_COLUMNS), list(map(list, zip(records.ids, *columns))))
