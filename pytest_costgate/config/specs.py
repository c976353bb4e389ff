"""What a valid costgate.yaml means: frozen values for models, tokenizers, prices, templates and suites. config.py
reads the YAML into them (and says what is wrong, where); the rest of the code works on these values alone."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from .thresholds import MetricRule


@dataclass(frozen=True)
class PrefixCache:
    """A provider's prompt-caching rule: prefixes of at least `min_tokens` are cached, in `block`-token steps."""

    min_tokens: int = 1024
    block: int = 128


@dataclass(frozen=True)
class Budgets:
    """Limits that hold whatever the baseline says (None: no limit)."""

    input_tokens_max: int | None = None
    output_tokens_max: int | None = None
    cost_per_request_max: Decimal | None = None
    latency_p95_max: Decimal | None = None  # ms


@dataclass(frozen=True)
class TokenizerSpec:
    """Which tokenizer counts tokens: a tiktoken encoding (maybe from a local file) or tokenizer.json."""

    encoding: str | None = None
    file: Path | None = None
    tokenizer_json: Path | None = None
    chat_template: Path | None = None  # a Jinja file; else tokenizer_config.json's next to tokenizer_json
    per_message: int = 3
    per_name: int = 1
    reply_priming: int = 3


@dataclass(frozen=True)
class TokenPrice:
    """API pricing in USD per million tokens."""

    input_per_1m: Decimal
    output_per_1m: Decimal
    cached_input_per_1m: Decimal | None = None


@dataclass(frozen=True)
class GpuPrice:
    """GPU pricing: an instance's USD per hour turned into USD per request."""

    usd_per_hour: Decimal
    mode: str = "measured"  # measured | configured
    concurrency: int = 1
    latency_s: Decimal | None = None
    utilization: Decimal = Decimal(1)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    backend: str
    options: Mapping[str, Any]
    tokenizer: TokenizerSpec
    pricing: TokenPrice | GpuPrice | None
    where: str
    base_dir: Path


@dataclass(frozen=True)
class TemplateSpec:
    """A text template file, or a chat template: (role, source, origin) triples."""

    text: Path | None = None
    chat: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class QualityRule:
    """Minimum agreement of outputs with the baseline's outputs (or the prompts' references)."""

    min_exact_match: Decimal | None = None
    min_similarity: Decimal | None = None



@dataclass(frozen=True)
class SuiteSpec:
    name: str
    model: ModelSpec
    prompts: Path
    template: TemplateSpec | None
    params: Mapping[str, Any]
    requests_per_month: Decimal | None
    tokens_only: bool
    thresholds: Mapping[str, MetricRule]
    max_error_rate: Decimal
    warmup: int
    where: str
    repeats: int = 1
    quality: QualityRule | None = None
    time_budget_s: Decimal | None = None
    replay: str = "full"  # full | changed (replay only prompts whose request changed since the baseline)
    shards: int = 1  # pytest items the suite's prompts are split into (spread over xdist workers)
    routing_default: str | None = None  # a routed suite: the model requests should stay on
    routes: Mapping[str, tuple[str, TokenPrice | GpuPrice | None]] | None = None  # routed: served name -> (model, pricing)
    prefix_cache: PrefixCache | None = None
    budgets: Budgets | None = None
    calibration_max_factor: Decimal | None = None  # machine-speed calibration on (the bound), None: off


@dataclass(frozen=True)
class Config:
    path: Path
    baseline: Path
    suites: tuple[SuiteSpec, ...]
    price_source: str | None = None
    price_date: str | None = None
    on_missing_baseline: str = "pass"
    time_budget_s: Decimal | None = None
    on_time_budget: str = "judge"
    models: Mapping[str, ModelSpec] = field(default_factory=dict)

    def suite(self, name: str) -> SuiteSpec:
        return next(s for s in self.suites if s.name == name)
