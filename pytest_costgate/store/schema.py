"""Reading a `costgate/1` document: parsed once into typed records, every field checked.

Errors name the file and the JSON path and say the fix, e.g.
`baseline.json: suites.s.prompts.a.cost: expected a decimal string, got 'NaN'.`
"""
from __future__ import annotations

import json
import stat
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..config.specs import SOURCE_KEYS
from ..safety.errors import BaselineError
from .document import (
    METRIC_FIELDS,
    SCHEMA,
    Attribution,
    Calibration,
    Document,
    Metrics,
    PromptChange,
    SuiteEntry,
    Summary,
)
from .jsonreader import MAX_BYTES, JsonReader, Path_, shown
from .records import Records
from .schema_prompts import column_major, columnar, prompt_record
from .stamp import VERSION as __version__
from .verdicts import ORDER, ROW_STATUSES, Levers, Row, SuiteVerdict


def parse_document(data: Any, source: str, fix: str = "Restore it from git or re-create it with "
                   "--costgate-update-baseline.") -> Document:
    """Validate a decoded costgate/1 document into typed records."""
    r = JsonReader(source, fix)
    if not isinstance(data, dict) or "schema" not in data:
        raise BaselineError(f"{source}: not a costgate document (no 'schema' field). {fix}")
    if data["schema"] != SCHEMA:
        raise BaselineError(f"{source}: schema is {shown(data['schema'])}, this costgate {__version__} reads "
                            f"{SCHEMA!r}. Re-create it with --costgate-update-baseline on the base branch.")
    suites_node = r.obj(data.get("suites"), ("suites",))
    suites = {r.text(name, ("suites",), False, 200) or "": parse_suite(entry, r, ("suites", name))
              for name, entry in suites_node.items()}
    judged = [e.verdict is not None for e in suites.values()]
    kind = data.get("kind") or ("report" if judged and all(judged) else "baseline")
    kind = r.choice(kind, ("kind",), ("report", "baseline", "partial"))
    shard = None
    if kind == "partial":
        node = r.obj(data.get("shard"), ("shard",))
        total = r.count(node.get("n"), ("shard", "n"), minimum=1) or 1
        part = r.count(node.get("k"), ("shard", "k"), minimum=1) or 1
        if part > total or total > 1024:
            raise r.fail(("shard",), f"expected 1 <= k <= n <= 1024, got k={part}, n={total}.")
        shard = (part, total)
    prices = r.obj(data.get("prices"), ("prices",), optional=True)
    summary_node = r.obj(data.get("summary"), ("summary",), optional=True)
    return Document(
        suites=MappingProxyType(suites), kind=kind,
        created=r.text(data.get("created"), ("created",), limit=500),
        git_sha=r.text(data.get("git_sha"), ("git_sha",), limit=500),
        config=r.text(data.get("config"), ("config",), limit=1000),
        environment=MappingProxyType(r.strings(data.get("environment"), ("environment",), 500)),
        price_source=r.text(prices.get("source"), ("prices", "source"), limit=500),
        price_date=r.text(prices.get("date"), ("prices", "date"), limit=500),
        summary=_summary(summary_node, r) if summary_node else None,
        config_sha256=r.hexhash(data.get("config_sha256"), ("config_sha256",)), shard=shard,
    )


def _summary(node: Mapping[str, Any], r: JsonReader) -> Summary:
    path: Path_ = ("summary",)
    return Summary(
        status=r.choice(node.get("status"), path + ("status",), ORDER, default="pass"),
        monthly_cost=r.decimal(node.get("monthly_cost"), path + ("monthly_cost",)) or Decimal(0),
        baseline_monthly_cost=r.decimal(node.get("baseline_monthly_cost"), path + ("baseline_monthly_cost",)),
        monthly_delta=r.decimal(node.get("monthly_delta"), path + ("monthly_delta",), signed=True),
        removed_suites=tuple(r.text(n, path + ("removed_suites", i), False, 200) or ""
                             for i, n in enumerate(r.items(node.get("removed_suites"), path + ("removed_suites",)))),
        baseline_git_sha=r.text(node.get("baseline_git_sha"), path + ("baseline_git_sha",), limit=500),
        baseline_created=r.text(node.get("baseline_created"), path + ("baseline_created",), limit=500),
    )


def suite_from(data: Any, where: str) -> SuiteEntry:
    """A suite entry as an xdist worker sent it (plain data), or as is when it never left this process."""
    if isinstance(data, SuiteEntry):
        return data
    return parse_suite(data, JsonReader(where, "This is a bug in pytest-costgate; please report it."), ("entry",))


def parse_suite(data: Any, r: JsonReader, path: Path_) -> SuiteEntry:
    node = r.obj(data, path)
    prompts_node = r.obj(node.get("prompts"), path + ("prompts",))
    if "columns" in prompts_node and "data" in prompts_node:
        prompts = column_major(prompts_node, r, path + ("prompts",))
    elif "columns" in prompts_node and "rows" in prompts_node:
        prompts = columnar(prompts_node, r, path + ("prompts",))
    else:  # the older form: an object of records keyed by prompt id
        prompts = {r.text(pid, path + ("prompts",), False, 1000) or "": prompt_record(pid, rec, r, path + ("prompts", pid))
                   for pid, rec in prompts_node.items()}
    pricing = node.get("pricing")
    verdict = node.get("verdict")
    return SuiteEntry(
        model=r.text(node.get("model"), path + ("model",), limit=500) or "",
        backend=r.text(node.get("backend"), path + ("backend",), limit=100) or "",
        mode=r.choice(node.get("mode"), path + ("mode",), ("replay", "tokens-only"), default="replay"),
        template_hash=r.hexhash(node.get("template_hash"), path + ("template_hash",)),
        prompt_set=MappingProxyType(r.strings(node.get("prompt_set"), path + ("prompt_set",), 1000)),
        tokenizer=r.text(node.get("tokenizer"), path + ("tokenizer",), limit=500) or "",
        pricing=None if pricing is None else MappingProxyType(_pricing(pricing, r, path + ("pricing",))),
        requests_per_month=r.decimal(node.get("requests_per_month"), path + ("requests_per_month",)),
        fingerprint=MappingProxyType(r.strings(node.get("fingerprint"), path + ("fingerprint",), 2000)),
        metrics=_metrics(node.get("metrics"), r, path + ("metrics",)),
        latency=MappingProxyType(_latency(node.get("latency"), r, path + ("latency",))),
        prompts=prompts if isinstance(prompts, Records) else MappingProxyType(prompts),
        errors=tuple(r.text(e, path + ("errors", i), False) or ""
                     for i, e in enumerate(r.items(node.get("errors"), path + ("errors",)))),
        unmeasured=tuple(r.text(e, path + ("unmeasured", i), False, 1000) or ""
                         for i, e in enumerate(r.items(node.get("unmeasured"), path + ("unmeasured",)))),
        repeats=r.count(node.get("repeats"), path + ("repeats",), minimum=1) or 1,
        load_s=r.real(node.get("load_s"), path + ("load_s",)) or 0.0,
        wall_s=r.real(node.get("wall_s"), path + ("wall_s",)) or 0.0,
        concurrency=r.count(node.get("concurrency"), path + ("concurrency",), minimum=1) or 1,
        verdict=None if verdict is None else _verdict(verdict, r, path + ("verdict",)),
        prompt_changes=tuple(_change(c, r, path + ("prompt_changes", i))
                             for i, c in enumerate(r.items(node.get("prompt_changes"), path + ("prompt_changes",)))),
        baseline_template_hash=r.hexhash(node.get("baseline_template_hash"), path + ("baseline_template_hash",)),
        baseline_source=r.text(node.get("baseline_source"), path + ("baseline_source",), limit=500),
        template_files=MappingProxyType(_files(node.get("template_files"), r, path + ("template_files",))),
        params=MappingProxyType(r.strings(node.get("params"), path + ("params",), 300)),
        default_model=r.text(node.get("default_model"), path + ("default_model",), limit=500),
        served=MappingProxyType(_shares(node.get("served"), r, path + ("served",))),
        calibration=_calibration(node.get("calibration"), r, path + ("calibration",)),
        attribution=None if node.get("attribution") is None else _attribution(node["attribution"], r,
                                                                                  path + ("attribution",)),
    )


def _files(value: Any, r: JsonReader, path: Path_) -> dict[str, str]:
    node = r.obj(value, path, optional=True)
    if len(node) > 1000:
        raise r.fail(path, f"expected at most 1,000 template files, got {len(node):,}.")
    return {r.text(k, path, False, 1000) or "": r.hexhash(v, path + (k,)) or "" for k, v in node.items()}


def _calibration(value: Any, r: JsonReader, path: Path_) -> Calibration | None:
    if value is None:
        return None
    node = r.obj(value, path)
    samples = r.items(node.get("ms"), path + ("ms",))
    if len(samples) > 100_000:
        raise r.fail(path + ("ms",), f"expected at most 100,000 timings, got {len(samples):,}.")
    return Calibration(r.text(node.get("workload"), path + ("workload",), False, 200) or "",
                       tuple(r.real(v, path + ("ms", i)) or 0.0 for i, v in enumerate(samples)))


def _shares(value: Any, r: JsonReader, path: Path_) -> dict[str, str]:
    node = r.strings(value, path, 60)
    if len(node) > 1000:
        raise r.fail(path, f"expected at most 1,000 models, got {len(node):,}.")
    for name, share in node.items():
        number = r.decimal(share, path + (name,))
        if number is not None and number > 1:
            raise r.fail(path + (name,), f"expected a share from 0 to 1, got {share!r}.")
    return node


def _attribution(value: Any, r: JsonReader, path: Path_) -> Attribution:
    node = r.obj(value, path)

    def names(key: str) -> tuple[str, ...]:
        items = r.items(node.get(key), path + (key,))
        if len(items) > 1000:
            raise r.fail(path + (key,), f"expected at most 1,000 files, got {len(items):,}.")
        return tuple(r.text(v, path + (key, i), False, 1000) or "" for i, v in enumerate(items))

    def flag(key: str) -> bool:
        value = node.get(key, False)
        if not isinstance(value, bool):
            raise r.fail(path + (key,), f"expected true or false, got {shown(value)}.")
        return value

    pricing = node.get("base_pricing")
    return Attribution(
        volume=r.decimal(node.get("volume"), path + ("volume",), signed=True),
        usage=r.decimal(node.get("usage"), path + ("usage",), signed=True),
        price=r.decimal(node.get("price"), path + ("price",), signed=True),
        files_changed=names("files_changed"), files_added=names("files_added"), files_removed=names("files_removed"),
        template_changed=flag("template_changed"), prompt_set_changed=flag("prompt_set_changed"),
        base_model=r.text(node.get("base_model"), path + ("base_model",), limit=500),
        base_pricing=None if pricing is None else MappingProxyType(_pricing(pricing, r, path + ("base_pricing",))),
        base_requests_per_month=r.decimal(node.get("base_requests_per_month"), path + ("base_requests_per_month",)),
        base_cost_per_request=r.decimal(node.get("base_cost_per_request"), path + ("base_cost_per_request",)),
        base_monthly_cost=r.decimal(node.get("base_monthly_cost"), path + ("base_monthly_cost",)),
        params_changed=tuple(_param_change(c, r, path + ("params_changed", i))
                             for i, c in enumerate(r.items(node.get("params_changed"), path + ("params_changed",)))),
    )


def _param_change(value: Any, r: JsonReader, path: Path_) -> tuple[str, str | None, str | None]:
    items = r.items(value, path)
    if len(items) != 3:
        raise r.fail(path, f"expected [param, before, after], got {shown(value)}.")
    return (r.text(items[0], path + (0,), False, 200) or "", r.text(items[1], path + (1,), limit=300),
            r.text(items[2], path + (2,), limit=300))


def _pricing(value: Any, r: JsonReader, path: Path_) -> dict[str, str]:
    node = r.strings(value, path, 100)
    kind = r.choice(node.get("kind"), path + ("kind",), ("tokens", "gpu"))
    for key, text in node.items():
        if key == "mode":
            r.choice(text, path + (key,), ("measured", "configured"))
        elif key in SOURCE_KEYS or key.startswith("context."):
            r.text(text, path + (key,), limit=200)  # where the prices came from: text
        elif key != "kind":
            r.decimal(text, path + (key,))
    return {**node, "kind": kind}


def _metrics(value: Any, r: JsonReader, path: Path_) -> Metrics:
    node = r.obj(value, path, optional=True)
    values: dict[str, Any] = {}
    for name in METRIC_FIELDS:
        if name in ("n", "errors", "input_tokens_total", "output_tokens_total"):
            values[name] = r.count(node.get(name), path + (name,)) or 0
        else:
            values[name] = r.decimal(node.get(name), path + (name,))
    values["error_rate"] = values["error_rate"] or Decimal(0)
    if values["errors"] > values["n"]:
        raise r.fail(path + ("errors",), f"{values['errors']} errors among {values['n']} requests.")
    return Metrics(**values)


def _latency(value: Any, r: JsonReader, path: Path_) -> dict[str, Mapping[str, float] | None]:
    node = r.obj(value, path, optional=True)
    out: dict[str, Mapping[str, float] | None] = {}
    for name, stats in node.items():
        key = path + (name,)
        r.text(name, path, False, 100)
        out[name] = None if stats is None else MappingProxyType(
            {str(k): r.real(v, key + (k,)) or 0.0 for k, v in r.obj(stats, key).items()})
    return out


def _verdict(value: Any, r: JsonReader, path: Path_) -> SuiteVerdict:
    node = r.obj(value, path)
    rows = []
    for i, row in enumerate(r.items(node.get("rows"), path + ("rows",))):
        key = path + ("rows", i)
        item = r.obj(row, key)
        values = {name: r.decimal(item.get(name), key + (name,), signed=True) for name in ("baseline", "candidate", "delta")}
        text = {name: None if value is None else _plain(value) for name, value in values.items()}
        rows.append(Row(
            metric=r.text(item.get("metric"), key + ("metric",), False, 500) or "",
            baseline=text["baseline"], candidate=text["candidate"], delta=text["delta"],
            delta_pct=r.text(item.get("delta_pct"), key + ("delta_pct",), limit=40),
            threshold=r.text(item.get("threshold"), key + ("threshold",), limit=200),
            status=r.choice(item.get("status"), key + ("status",), ROW_STATUSES),
            interval=r.text(item.get("interval"), key + ("interval",), limit=200)))
    levers = r.obj(node.get("levers"), path + ("levers",), optional=True)
    base = levers.get("baseline")
    return SuiteVerdict(
        status=r.choice(node.get("status"), path + ("status",), ORDER), rows=tuple(rows),
        notes=tuple(r.text(n, path + ("notes", i), False) or ""
                    for i, n in enumerate(r.items(node.get("notes"), path + ("notes",)))),
        template_changed=_bool(node.get("template_changed", False), r, path + ("template_changed",)),
        prices_changed=_bool(node.get("prices_changed", False), r, path + ("prices_changed",)),
        levers=None if not levers else (None if base is None else _levers(base, r, path + ("levers", "baseline")),
                                        _levers(levers.get("candidate"), r, path + ("levers", "candidate"))),
        prefix_end=r.text(node.get("prefix_end"), path + ("prefix_end",), limit=1000))


def _bool(value: Any, r: JsonReader, path: Path_) -> bool:
    if not isinstance(value, bool):
        raise r.fail(path, f"expected true or false, got {shown(value)}.")
    return value


def _levers(value: Any, r: JsonReader, path: Path_) -> Levers:
    node = r.obj(value, path)

    def share(key: str) -> Decimal | None:
        number = r.decimal(node.get(key), path + (key,))
        if number is not None and number > 1:
            raise r.fail(path + (key,), f"expected a share from 0 to 1, got {shown(node.get(key))}.")
        return number

    served = {name: Decimal(text) for name, text in _shares(node.get("served"), r, path + ("served",)).items()}
    return Levers(cacheable_prefix_share=share("cacheable_prefix_share"), cache_hit_ratio=share("cache_hit_ratio"),
                  served=MappingProxyType(served), escalation_rate=share("escalation_rate"))


def _plain(value: Decimal) -> str:
    return f"{value:f}" if -30 < value.adjusted() < 30 else str(value)


def _change(value: Any, r: JsonReader, path: Path_) -> PromptChange:
    node = r.obj(value, path)
    return PromptChange(
        id=r.text(node.get("id"), path + ("id",), False, 1000) or "",
        cost_delta=r.decimal(node.get("cost_delta"), path + ("cost_delta",), signed=True),
        input_tokens_delta=r.count(node.get("input_tokens_delta", 0), path + ("input_tokens_delta",), signed=True) or 0,
        output_tokens_delta=r.count(node.get("output_tokens_delta", 0), path + ("output_tokens_delta",), signed=True) or 0,
    )


def _gunzip(raw: bytes, path: Path, what: str) -> bytes:
    """Decompressed, but never past MAX_BYTES: a few kilobytes of gzip can claim gigabytes."""
    import gzip
    import io

    data = bytearray()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as handle:
            for block in iter(lambda: handle.read(16 << 20), b""):
                data += block
                if len(data) > MAX_BYTES:
                    raise BaselineError(f"{path}: the {what} unpacks to over {MAX_BYTES >> 20} MiB; not a costgate "
                                        "document (refused before reading it).")
    except (OSError, EOFError) as exc:
        raise BaselineError(f"{path}: the {what} is not readable gzip ({exc}).") from None
    return bytes(data)


class DuplicateKey(ValueError):
    """A JSON object naming a key twice (json.loads would keep the last silently)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise DuplicateKey(repr(twice[:100]))
    return out


def read_document(path: Path, what: str = "baseline") -> Document | None:
    """The document at `path`, None when there is none; anything unreadable or damaged is a BaselineError."""
    fix = ("Restore it from git or re-create it with --costgate-update-baseline." if what == "baseline"
           else "Write it again with pytest --costgate --costgate-report PATH.")
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise BaselineError(f"{path}: the {what} is not a regular file (a folder, device or pipe?). Fix the path.")
        if info.st_size > MAX_BYTES:
            raise BaselineError(f"{path}: the {what} is over {MAX_BYTES >> 20} MiB; not a costgate document.")
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise BaselineError(f"{path}: cannot read the {what}: {exc}") from None
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip(raw, path, what)
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except DuplicateKey as exc:
        raise BaselineError(f"{path}: the {what} gives {exc} twice; a document names each field once. {fix}") from None
    except MemoryError:
        raise BaselineError(f"{path}: the {what} is too big to read in this machine's memory. {fix}") from None
    except UnicodeDecodeError:
        raise BaselineError(f"{path}: the {what} is not UTF-8 text. {fix}") from None
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{path}:{exc.lineno}: the {what} is not valid JSON ({exc.msg}). {fix}") from None
    except RecursionError:
        raise BaselineError(f"{path}: the {what} is nested too deeply to be a costgate document. {fix}") from None
    except ValueError as exc:  # e.g. an integer of over 4,300 digits
        raise BaselineError(f"{path}: the {what} holds an unreadable value ({exc}). {fix}") from None
    return parse_document(data, str(path), fix)
