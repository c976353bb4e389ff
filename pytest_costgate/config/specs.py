"""What a valid costgate.yaml means: frozen values for models, tokenizers, prices, templates and suites. config.py
reads the YAML into them (and says what is wrong, where); the rest of the code works on these values alone."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
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


# A token price's rates by name, and the usage unit each applies to (pricing/usage.py: UNITS)
RATE_UNITS: Mapping[str, str] = MappingProxyType({
    "input_per_1m": "input_tokens", "output_per_1m": "output_tokens", "cached_input_per_1m": "cache_read_tokens",
    "cache_write_per_1m": "cache_write_tokens", "cache_write_1h_per_1m": "cache_write_1h_tokens",
    "reasoning_per_1m": "output_reasoning_tokens", "input_audio_per_1m": "input_audio_tokens",
    "input_image_per_1m": "input_image_tokens", "input_video_per_1m": "input_video_tokens",
    "cached_audio_input_per_1m": "cache_audio_read_tokens", "cached_image_input_per_1m": "cache_image_read_tokens",
    "input_tool_per_1m": "input_tool_tokens", "output_audio_per_1m": "output_audio_tokens",
    "output_image_per_1m": "output_image_tokens", "output_video_per_1m": "output_video_tokens",
})
SOURCE_KEYS = ("source", "source_version", "provider", "source_model", "at")  # text in a stored price table
EXTRA_RATES = frozenset(RATE_UNITS) - {"input_per_1m", "output_per_1m", "cached_input_per_1m", "cache_write_per_1m",
                                       "cache_write_1h_per_1m", "reasoning_per_1m"}


@dataclass(frozen=True)
class PriceTier:
    """A long-context tier: above this many input tokens, these rates apply to the whole request (as providers
    bill it); a rate the tier does not name keeps the base one."""

    above_input_tokens: int
    rates: Mapping[str, Decimal]  # rate name (RATE_UNITS) -> USD per 1M tokens


@dataclass(frozen=True)
class PriceSource:
    """Where a price table came from when it was not typed by hand."""

    name: str  # "genai-prices"
    version: str  # the source's version, e.g. 0.2.3
    provider: str
    model: str  # the source's id of the model
    at: str  # the date (or time) the prices were read for: fixed in the config, never "now"
    context: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # e.g. service_tier: flex


@dataclass(frozen=True)
class TokenPrice:
    """API pricing in USD per million tokens (cache reads, cache writes, reasoning and modalities at their own
    rates when set), an optional fee per request, and long-context tiers."""

    input_per_1m: Decimal
    output_per_1m: Decimal
    cached_input_per_1m: Decimal | None = None
    cache_write_per_1m: Decimal | None = None
    cache_write_1h_per_1m: Decimal | None = None
    reasoning_per_1m: Decimal | None = None
    extra_per_1m: Mapping[str, Decimal] = field(default_factory=lambda: MappingProxyType({}))  # EXTRA_RATES
    per_request: Decimal | None = None  # USD per request, on top of the tokens
    tiers: tuple[PriceTier, ...] = ()  # by above_input_tokens, ascending
    source: PriceSource | None = None

    def rates(self) -> dict[str, Decimal]:
        """Every rate set, by name (the base rates, below any tier)."""
        named = {"input_per_1m": self.input_per_1m, "output_per_1m": self.output_per_1m,
                 "cached_input_per_1m": self.cached_input_per_1m, "cache_write_per_1m": self.cache_write_per_1m,
                 "cache_write_1h_per_1m": self.cache_write_1h_per_1m, "reasoning_per_1m": self.reasoning_per_1m}
        return {**{k: v for k, v in named.items() if v is not None}, **self.extra_per_1m}

    @property
    def linear(self) -> bool:
        """Whether a request's cost is input x rate + output x rate (+ cache reads): no tier, fee, cache write,
        reasoning or modality rate. Such prices can be applied to mean token counts."""
        return not (self.tiers or self.per_request or self.extra_per_1m or self.cache_write_per_1m is not None
                    or self.cache_write_1h_per_1m is not None or self.reasoning_per_1m is not None)


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
    tokenizer_default: bool = False  # `tokenizer:` left out: the one tiktoken maps the model name to, or cl100k_base


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
    without_usage: str = "fail"  # a request asking for reasoning or tools whose answer has no usage: fail | tokenizer


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
