"""The `costgate/1` document (baseline and JSON report) as typed, frozen records, and their JSON form.

Reading a document from disk happens once, in `schema.py`, which validates every field; the rest of
the code works on these records and never on raw JSON.
"""
from __future__ import annotations

import decimal
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType
from typing import Any

from .records import ROWS_LIMIT, PromptResult, Records, prompt_rows
from .verdicts import SuiteVerdict

EMPTY: Mapping[str, Any] = MappingProxyType({})
SCHEMA = "costgate/1"
CALIBRATION_MAX_SAMPLES = 4000  # stored per suite: plenty for a speed factor, bounded for a million-prompt suite


WIDE = decimal.Context(prec=80, Emax=10**6, Emin=-(10**6))  # formatting money near the sanity limits stays exact


def decimal_text(value: Decimal | Fraction) -> str:
    """A number for JSON: fixed-point, at most 12 places, no trailing zeros (never '0E-25')."""
    if isinstance(value, Fraction):
        value = WIDE.divide(Decimal(value.numerator), Decimal(value.denominator))
    if not value.is_finite():
        return str(value)
    return f"{value.quantize(Decimal('1e-12'), context=WIDE).normalize(context=WIDE):f}"


METRIC_FIELDS = ("n", "errors", "error_rate", "input_tokens_mean", "input_tokens_total", "output_tokens_mean",
                 "output_tokens_total", "cost_per_request", "monthly_cost", "latency_p50", "latency_p95",
                 "cache_hit_ratio", "cacheable_prefix_share", "escalation_rate", "reasoning_tokens_mean")
COUNT_FIELDS = frozenset({"n", "errors", "input_tokens_total", "output_tokens_total"})


@dataclass(frozen=True)
class Metrics:
    """A suite's aggregates, as stored (decimals rounded to 12 places; exact judging uses per-prompt records)."""

    n: int = 0
    errors: int = 0
    error_rate: Decimal = Decimal(0)
    input_tokens_mean: Decimal | None = None
    input_tokens_total: int = 0
    output_tokens_mean: Decimal | None = None
    output_tokens_total: int = 0
    cost_per_request: Decimal | None = None
    monthly_cost: Decimal | None = None
    latency_p50: Decimal | None = None
    latency_p95: Decimal | None = None
    cache_hit_ratio: Decimal | None = None  # server-reported cached input tokens / input tokens
    cacheable_prefix_share: Decimal | None = None  # input tokens a prefix cache could serve / input tokens
    escalation_rate: Decimal | None = None  # share of requests a router sent past the suite's default model
    reasoning_tokens_mean: Decimal | None = None  # output tokens spent on reasoning, per request (when reported)

    def value(self, metric: str) -> Decimal | None:
        value = getattr(self, metric, None)
        return Decimal(value) if isinstance(value, int) else value

    def to_json(self) -> dict[str, Any]:
        return {name: (decimal_text(v) if isinstance(v, Decimal) else v)
                for name in METRIC_FIELDS for v in (getattr(self, name),)}


@dataclass(frozen=True)
class PromptChange:
    """A prompt whose cost or tokens changed against the baseline."""

    id: str
    cost_delta: Decimal | None
    input_tokens_delta: int
    output_tokens_delta: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "cost_delta": None if self.cost_delta is None else decimal_text(self.cost_delta),
                "input_tokens_delta": self.input_tokens_delta, "output_tokens_delta": self.output_tokens_delta}


@dataclass(frozen=True)
class Attribution:
    """Why a suite's monthly cost moved against its baseline (see attribution.py): the change split into
    volume + usage + price (they sum to it), and which inputs changed."""

    volume: Decimal | None = None  # requests per month changed
    usage: Decimal | None = None  # tokens or GPU time changed, at the baseline's prices
    price: Decimal | None = None  # prices changed, at this run's usage
    files_changed: tuple[str, ...] = ()  # template files (relative to the config) whose content changed
    files_added: tuple[str, ...] = ()
    files_removed: tuple[str, ...] = ()
    template_changed: bool = False
    prompt_set_changed: bool = False
    base_model: str | None = None  # the baseline's model, when it was another
    base_pricing: Mapping[str, str] | None = None  # the baseline's prices, when they were others
    base_requests_per_month: Decimal | None = None  # the baseline's traffic, when it was other
    base_cost_per_request: Decimal | None = None  # the baseline's figures to 12 places (verdict rows keep fewer)
    base_monthly_cost: Decimal | None = None
    params_changed: tuple[tuple[str, str | None, str | None], ...] = ()  # (param, baseline's, this run's)

    def to_json(self) -> dict[str, Any]:
        def text(value: Decimal | None) -> str | None:
            return None if value is None else decimal_text(value)

        return {"volume": text(self.volume), "usage": text(self.usage), "price": text(self.price),
                "files_changed": list(self.files_changed), "files_added": list(self.files_added),
                "files_removed": list(self.files_removed), "template_changed": self.template_changed,
                "prompt_set_changed": self.prompt_set_changed, "base_model": self.base_model,
                "base_pricing": None if self.base_pricing is None else dict(self.base_pricing),
                "base_requests_per_month": text(self.base_requests_per_month),
                "base_cost_per_request": text(self.base_cost_per_request),
                "base_monthly_cost": text(self.base_monthly_cost),
                **({"params_changed": [list(c) for c in self.params_changed]} if self.params_changed else {})}


@dataclass(frozen=True)
class Calibration:
    """Timings (ms) of the fixed machine-speed workload (calibration.WORKLOAD), interleaved with the prompts."""

    workload: str
    ms: tuple[float, ...]


@dataclass(frozen=True)
class SuiteEntry:
    """One suite of a document: what was measured, where, with which templates and prices, and (in a
    report) how it was judged."""

    model: str
    backend: str
    mode: str  # replay | tokens-only
    template_hash: str | None
    prompt_set: Mapping[str, str]  # path, sha256
    tokenizer: str
    pricing: Mapping[str, str] | None
    requests_per_month: Decimal | None
    fingerprint: Mapping[str, str]
    metrics: Metrics
    latency: Mapping[str, Mapping[str, float] | None] = field(default_factory=lambda: EMPTY)
    prompts: Mapping[str, PromptResult] = field(default_factory=lambda: EMPTY)
    errors: tuple[str, ...] = ()
    unmeasured: tuple[str, ...] = ()
    repeats: int = 1
    load_s: float = 0.0
    wall_s: float = 0.0
    concurrency: int = 1  # requests in flight while replaying
    verdict: SuiteVerdict | None = None
    prompt_changes: tuple[PromptChange, ...] = ()
    baseline_template_hash: str | None = None
    baseline_source: str | None = None
    template_files: Mapping[str, str] = field(default_factory=lambda: EMPTY)  # path -> content hash
    attribution: Attribution | None = None  # a judged entry's cost change explained
    default_model: str | None = None  # a routed suite's model requests should stay on (escalation_rate)
    served: Mapping[str, str] = field(default_factory=lambda: EMPTY)  # routed: model -> share of requests
    calibration: Calibration | None = None  # machine-speed probe timings taken during the replay
    params: Mapping[str, str] = field(default_factory=lambda: EMPTY)  # generation params sent, as short JSON text

    @property
    def requests_per_s(self) -> float | None:
        """Requests completed per second of replay (every repeat counted), None for tokens-only."""
        if self.mode != "replay" or not self.wall_s:
            return None
        return round(self.metrics.n * self.repeats / self.wall_s, 3)

    @property
    def status(self) -> str:
        return self.verdict.status if self.verdict is not None else "pass"

    def stored(self) -> SuiteEntry:
        """The entry as a baseline keeps it: no verdict or comparison with another baseline."""
        from dataclasses import replace

        return replace(self, verdict=None, prompt_changes=(), baseline_template_hash=None, baseline_source=None,
                       attribution=None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model, "backend": self.backend, "mode": self.mode, "template_hash": self.template_hash,
            "template_files": dict(self.template_files),
            **({"params": dict(self.params)} if self.params else {}),
            "default_model": self.default_model, "served": dict(self.served),
            "calibration": None if self.calibration is None else {"workload": self.calibration.workload,
                                                                   "ms": [round(v, 6) for v in self.calibration.ms]},
            "prompt_set": dict(self.prompt_set), "tokenizer": self.tokenizer,
            "pricing": None if self.pricing is None else dict(self.pricing),
            "requests_per_month": None if self.requests_per_month is None else decimal_text(self.requests_per_month),
            "fingerprint": dict(self.fingerprint), "load_s": round(self.load_s, 4), "wall_s": round(self.wall_s, 4),
            "concurrency": self.concurrency, "requests_per_s": self.requests_per_s,
            "metrics": self.metrics.to_json(),
            "latency": {k: (None if v is None else dict(v)) for k, v in self.latency.items()},
            "errors": list(self.errors), "repeats": self.repeats, "unmeasured": list(self.unmeasured),
            "prompts": prompt_rows(self.prompts if isinstance(self.prompts, Records) else
                                   Records.of(self.prompts.values()) if len(self.prompts) > ROWS_LIMIT else
                                   self.prompts.values()),
        }
        if self.verdict is not None:
            out["verdict"] = self.verdict.to_json()
            out["prompt_changes"] = [c.to_json() for c in self.prompt_changes]
            out["baseline_template_hash"] = self.baseline_template_hash
            if self.attribution is not None:
                out["attribution"] = self.attribution.to_json()
        if self.baseline_source is not None:
            out["baseline_source"] = self.baseline_source
        return out


@dataclass(frozen=True)
class Summary:
    """Run-level figures of a report."""

    status: str
    monthly_cost: Decimal
    baseline_monthly_cost: Decimal | None = None
    monthly_delta: Decimal | None = None
    removed_suites: tuple[str, ...] = ()
    baseline_git_sha: str | None = None
    baseline_created: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("monthly_cost", "baseline_monthly_cost", "monthly_delta"):
            data[name] = None if data[name] is None else decimal_text(data[name])
        data["removed_suites"] = list(self.removed_suites)
        return data


@dataclass(frozen=True)
class Document:
    """A baseline (suites as measured) or a report (suites judged, with a summary)."""

    suites: Mapping[str, SuiteEntry]
    kind: str = "report"  # report | baseline | partial (one CI matrix job's shard, unjudged)
    created: str | None = None
    git_sha: str | None = None
    config: str | None = None
    environment: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    price_source: str | None = None
    price_date: str | None = None
    summary: Summary | None = None
    config_sha256: str | None = None  # the config file's content, so merged parts can be checked alike
    shard: tuple[int, int] | None = None  # (k, n) of a partial report

    def to_json(self) -> dict[str, Any]:

        out: dict[str, Any] = {
            "schema": SCHEMA, "kind": self.kind, "created": self.created, "git_sha": self.git_sha,
            "config": self.config, "config_sha256": self.config_sha256, "environment": dict(self.environment),
            "prices": {"source": self.price_source, "date": self.price_date},
            "summary": {} if self.summary is None else self.summary.to_json(),
            "suites": {name: entry.to_json() for name, entry in self.suites.items()},
        }
        if self.shard is not None:
            out["shard"] = {"k": self.shard[0], "n": self.shard[1]}
        return out
