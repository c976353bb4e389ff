"""A suite's stored per-prompt records (rows, or columns for big suites), checked and built as records. A column
at a time where the values allow (mostly in C: type sets, min and max), record by record with located errors
otherwise. Reading the rest of a document is schema.py's.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from .jsonreader import HEX_HASH, MAX_TEXT, MAX_TOKENS, JsonReader, Path_, shown
from .records import PROMPT_COLUMNS, REQUIRED_COLUMNS, PromptResult, Records


def column_major(node: Mapping[str, Any], r: JsonReader, path: Path_) -> Mapping[str, PromptResult]:
    """Per-prompt values a column per list (big suites): checked a column at a time, else row by row."""
    columns = r.items(node.get("columns"), path + ("columns",))
    data = r.items(node.get("data"), path + ("data",))
    if len(data) != len(columns) or not all(isinstance(c, list) for c in data) or len({len(c) for c in data}) > 1:
        raise r.fail(path + ("data",), f"expected {len(columns)} lists of one length (one per column).")
    quick = columns_fast(columns, None, data)
    if quick is not None:
        return quick
    return columnar({"columns": columns, "rows": [list(row) for row in zip(*data)]}, r, path, fast=False)


def columnar(node: Mapping[str, Any], r: JsonReader, path: Path_, fast: bool = True) -> Mapping[str, PromptResult]:
    """Rows of per-prompt values in the order `columns` names (unknown columns, from a newer costgate, ignored)."""
    columns = r.items(node.get("columns"), path + ("columns",))
    if not all(isinstance(c, str) for c in columns) or "id" not in columns or len(set(columns)) != len(columns):
        raise r.fail(path + ("columns",), "expected a list of distinct column names including 'id'.")
    known = [(i, name) for i, name in enumerate(columns) if name in PROMPT_COLUMNS]
    width = len(columns)
    rows = r.items(node.get("rows"), path + ("rows",))
    quick = columns_fast(columns, rows) if fast else None
    if quick is not None:
        return quick
    out: dict[str, PromptResult] = {}
    for n, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise r.fail(path + ("rows", n), f"expected a list of {width} values (one per column), got {shown(row)}.")
        record = {name: row[i] for i, name in known if row[i] is not None}
        pid = record.pop("id", None)  # a null id is left out of `record` like any null
        if not isinstance(pid, str) or not pid or len(pid) > 1000:
            raise r.fail(path + ("rows", n, "id"), f"expected a prompt id, got {shown(pid)}.")
        if pid in out:
            raise r.fail(path + ("rows", n, "id"), f"prompt id {shown(pid)} appears twice.")
        out[pid] = prompt_record(pid, record, r, path + ("rows", n))
    return out


_DECIMAL_TEXT = re.compile(r"[0-9]{1,24}(\.[0-9]{1,35})?")  # GPU-time costs run to 30-odd places


_NONE = type(None)


def _present(values: Sequence[Any], types: set[type]) -> list[Any]:
    return [v for v in values if v is not None] if _NONE in types else list(values)


def _ints(lo: int, hi: int, optional: bool = True) -> Any:
    def check(values: Sequence[Any]) -> bool:
        types = set(map(type, values))
        if not types <= ({int, _NONE} if optional else {int}):
            return False
        nums = _present(values, types)
        return not nums or (min(nums) >= lo and max(nums) <= hi)
    return check


def _times(values: Sequence[Any]) -> bool:
    types = set(map(type, values))
    if not types <= {int, float, _NONE}:
        return False
    nums = _present(values, types)
    return not nums or (math.isfinite(math.fsum(nums)) and min(nums) >= 0 and max(nums) <= 1e12)


def _texts(limit: int, optional: bool = True) -> Any:
    def check(values: Sequence[Any]) -> bool:
        types = set(map(type, values))
        if not types <= ({str, _NONE} if optional else {str}):
            return False
        lengths = list(map(len, _present(values, types)))
        return not lengths or (min(lengths) > 0 and max(lengths) <= limit)
    return check


def _each(test: Any) -> Any:
    """A check of every distinct non-null value (hashes and decimals repeat a lot)."""
    def check(values: Sequence[Any]) -> bool:
        return set(map(type, values)) <= {str, _NONE} and all(v is None or test(v) for v in set(values))
    return check


def _floats(values: Sequence[Any]) -> Sequence[Any]:
    return values if int not in set(map(type, values)) else tuple(None if v is None else float(v) for v in values)


def _decimals(values: Sequence[Any]) -> Sequence[Any]:
    """Each distinct text made a Decimal once, then looked up (in C) for every value."""
    made: dict[Any, Decimal | None] = {v: Decimal(v) for v in set(values) if v is not None}
    made[None] = None
    return list(map(made.__getitem__, values))


_FLAG = {True: True, False: False, None: False}
_hash = _each(lambda v: type(v) is str and HEX_HASH.fullmatch(v) is not None)


def _plain_decimal(text: Any) -> bool:
    """A decimal the exact check (JsonReader.decimal) takes: plain digits, at most 60 characters, not below 1e-30."""
    if type(text) is not str or len(text) > 60 or _DECIMAL_TEXT.fullmatch(text) is None:
        return False
    number = Decimal(text)
    return not number or number.adjusted() >= -30


_decimal = _each(_plain_decimal)

# Per column: (a check of the whole column, a conversion to the record's type). A column without an entry makes
# the fast path step aside for the exact, record-by-record checks.
_FAST: dict[str, tuple[Any, Any]] = {
    "id": (_texts(1000, optional=False), None),
    "weight": (lambda vs: None not in vs and _decimal(vs) and all(v.strip("0.") for v in set(vs)), _decimals),
    "rendered_tokens": (_ints(0, MAX_TOKENS, optional=False), None),
    "input_tokens": (_ints(0, MAX_TOKENS), None), "output_tokens": (_ints(0, MAX_TOKENS), None),
    "cached_tokens": (_ints(0, MAX_TOKENS), None),
    "token_source": (_texts(40, optional=False), None),
    "ttft_ms": (_times, _floats), "e2e_ms": (_times, _floats), "tpot_ms": (_times, _floats),
    "busy_ms": (_times, _floats),
    "runs": (_ints(1, MAX_TOKENS), None),
    "e2e_runs": (lambda vs: all(v is None or (type(v) is list and v and _times(v) and None not in v) for v in vs),
                 lambda vs: tuple(None if v is None else tuple(float(x) for x in v) for v in vs)),
    "cost": (_decimal, _decimals),
    "output": (_texts(MAX_TEXT), None), "error": (_texts(10_000), None), "note": (_texts(10_000), None),
    "output_sha": (_hash, None), "request_hash": (_hash, None),
    "reused": (lambda vs: set(map(type, vs)) <= {bool, _NONE}, lambda vs: list(map(_FLAG.__getitem__, vs))),
    "cacheable_tokens": (_ints(0, MAX_TOKENS), None), "served_by": (_texts(500), None),
    "cache_write_tokens": (_ints(0, MAX_TOKENS), None), "cache_write_1h_tokens": (_ints(0, MAX_TOKENS), None),
    "reasoning_tokens": (_ints(0, MAX_TOKENS), None),
    "usage_details": (lambda vs: all(v is None or _details_ok(v) for v in vs),
                      lambda vs: [None if v is None else MappingProxyType(v) for v in vs]),
}


def columns_fast(columns: list[str], rows: list[Any] | None, data: list[list[Any]] | None = None) -> Records | None:
    """Rows checked a column at a time (mostly in C: type sets, min and max) and built positionally: several times
    faster than record by record, which matters at a million prompts. Anything unusual returns None and the
    exact, located checks run instead."""
    if list(columns) != [name for name in PROMPT_COLUMNS if name in columns] or not REQUIRED_COLUMNS <= set(columns):
        return None  # the exact checks read other orders, unknown columns and defaults
    width = len(columns)
    if data is None:
        if not all(type(row) is list and len(row) == width for row in rows or ()):
            return None
        if not rows:
            return Records([], {name: [] for name in PROMPT_COLUMNS[1:]})
        data = [list(column) for column in zip(*rows)]
    if not data[0]:
        return Records([], {name: [] for name in PROMPT_COLUMNS[1:]})
    converted = []
    for name, values in zip(columns, data):
        check, convert = _FAST[name]
        if not check(values):
            return None
        converted.append(values if convert is None else convert(values))
    ids = converted[0]
    if len(set(ids)) != len(ids):
        return None
    found = dict(zip(columns[1:], converted[1:]))
    nulls = [None] * len(ids)  # a column left out held only nulls (see records.prompt_rows)
    return Records(list(ids), {name: list(found[name]) if name in found else nulls for name in PROMPT_COLUMNS[1:]})


def prompt_record(pid: str, value: Any, r: JsonReader, path: Path_) -> PromptResult:
    node = r.obj(value, path)

    def count(name: str, limit: int = MAX_TOKENS) -> int | None:
        number = r.count(node.get(name), path + (name,))
        if number is not None and number > limit:
            raise r.fail(path + (name,), f"{number:,} is beyond any model ({limit:,} at most).")
        return number

    input_tokens, output_tokens = count("input_tokens"), count("output_tokens")
    rendered = count("rendered_tokens")
    runs = node.get("e2e_runs")
    return PromptResult(
        id=pid, weight=r.decimal(node.get("weight", "1"), path + ("weight",), positive=True) or Decimal(1),
        rendered_tokens=rendered if rendered is not None else (input_tokens or 0),
        input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=count("cached_tokens"),
        token_source=r.text(node.get("token_source", "tokenizer"), path + ("token_source",), False, 40) or "",
        ttft_ms=r.real(node.get("ttft_ms"), path + ("ttft_ms",)), e2e_ms=r.real(node.get("e2e_ms"), path + ("e2e_ms",)),
        tpot_ms=r.real(node.get("tpot_ms"), path + ("tpot_ms",)), busy_ms=r.real(node.get("busy_ms"), path + ("busy_ms",)),
        runs=r.count(node.get("runs"), path + ("runs",), minimum=1),
        e2e_runs=None if runs is None else tuple(r.real(v, path + ("e2e_runs", i)) or 0.0
                                                 for i, v in enumerate(r.items(runs, path + ("e2e_runs",)))),
        cost=r.decimal(node.get("cost"), path + ("cost",)),
        output=r.text(node.get("output"), path + ("output",), limit=MAX_TEXT),
        output_sha=r.hexhash(node.get("output_sha"), path + ("output_sha",)),
        error=r.text(node.get("error"), path + ("error",)), note=r.text(node.get("note"), path + ("note",)),
        request_hash=r.hexhash(node.get("request_hash"), path + ("request_hash",)),
        reused=flag(node.get("reused"), r, path + ("reused",)),
        cacheable_tokens=count("cacheable_tokens"),
        cache_write_tokens=count("cache_write_tokens"), cache_write_1h_tokens=count("cache_write_1h_tokens"),
        reasoning_tokens=count("reasoning_tokens"),
        usage_details=_details(node.get("usage_details"), r, path + ("usage_details",)),
        served_by=r.text(node.get("served_by"), path + ("served_by",), limit=500),

    )


def flag(value: Any, r: JsonReader, path: Path_) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise r.fail(path, f"expected true or false, got {shown(value)}.")
    return value


USAGE_DETAIL = re.compile(r"[a-z0-9_]{1,60}_tokens")


def _details_ok(value: Any) -> bool:
    return type(value) is dict and len(value) <= 50 and all(
        type(k) is str and USAGE_DETAIL.fullmatch(k) and type(n) is int and 0 <= n <= MAX_TOKENS for k, n in value.items())


def _details(value: Any, r: JsonReader, path: Path_) -> Mapping[str, int] | None:
    """A record's other usage parts ({'input_audio_tokens': 120}): names of usage keys, whole counts."""
    if value is None:
        return None
    if not _details_ok(value):
        raise r.fail(path, f"expected an object of usage counts such as {{'input_audio_tokens': 120}}, got "
                     f"{shown(value)}.")
    return MappingProxyType(dict(value))
