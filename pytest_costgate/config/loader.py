"""costgate.yaml -> frozen, validated values. Errors name file, line, field and the fix."""
from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..safety.errors import ConfigError
from ..safety.redact import register
from .levers import CALIBRATED, DEFAULT_MAX_FACTOR, calibration_bound, merged_budgets, prefix_cache, routes_of
from .prices import read_pricing
from .specs import Config, ModelSpec, QualityRule, SuiteSpec, TemplateSpec, TokenizerSpec
from .thresholds import LEVELS, METRICS, MetricRule, parse_threshold
from .yamlsrc import Key, Reader, did_you_mean, load_yaml

DEFAULT_THRESHOLDS: Mapping[str, MetricRule] = MappingProxyType({
    "cost_per_request": MetricRule(warn=parse_threshold("cost_per_request", "+1%"),
                                   fail=parse_threshold("cost_per_request", "+10%")),
    "monthly_cost": MetricRule(warn=parse_threshold("monthly_cost", "+1%"),
                               fail=parse_threshold("monthly_cost", "+10%")),
    "input_tokens_mean": MetricRule(warn=parse_threshold("input_tokens_mean", "+0%")),
    "output_tokens_mean": MetricRule(warn=parse_threshold("output_tokens_mean", "+0%")),
    "error_rate": MetricRule(fail=parse_threshold("error_rate", "+0%")),
})



NAME = re.compile(r"\w(?:[\w. -]*[\w.-])?")
TOP = frozenset({"version", "baseline", "pricing", "models", "defaults", "suites", "on_missing_baseline",
                 "time_budget_s", "on_time_budget"})
MODEL = frozenset({"backend", "tokenizer", "pricing"})
SUITE = frozenset({"model", "prompts", "template", "chat_template", "params", "requests_per_month",
                   "tokens_only", "thresholds", "max_error_rate", "warmup", "repeats", "quality", "time_budget_s",
                   "replay", "shards", "routing", "prefix_cache", "budgets", "calibration", "without_usage"})
DEFAULTS = frozenset({"thresholds", "max_error_rate", "warmup", "tokens_only", "repeats", "quality", "time_budget_s",
                      "replay", "shards", "prefix_cache", "budgets", "calibration", "without_usage"})


def load_config(path: Path) -> Config:
    """Read and validate a costgate.yaml."""
    src = load_yaml(path, "costgate config", ConfigError)
    if src.data is None:
        raise ConfigError(f"{path}: the config is empty. Start from the README's quickstart example.")
    r = Reader(src, ConfigError)
    top = r.mapping((), TOP, required=("models", "suites"))
    if "version" in top and top["version"] != 1:
        raise r.fail(("version",), f"unsupported version {top['version']!r}; this costgate reads version 1.")
    pricing = r.mapping(("pricing",), {"source", "date"}) if "pricing" in top else {}
    defaults = r.mapping(("defaults",), DEFAULTS) if "defaults" in top else {}
    default_rules = _rules(r, ("defaults", "thresholds"), DEFAULT_THRESHOLDS) if "thresholds" in defaults else DEFAULT_THRESHOLDS
    models_node = r.value(("models",))
    if not isinstance(models_node, dict) or not models_node:
        raise r.fail(("models",), "expected a mapping of model names to model settings.")
    models = {_name(r, ("models",), name): _model(r, name, pricing.get("date")) for name in models_node}
    suites_node = r.value(("suites",))
    if not isinstance(suites_node, dict) or not suites_node:
        raise r.fail(("suites",), "expected a mapping of suite names to suite settings.")
    suites = tuple(_suite(r, _name(r, ("suites",), name), models, defaults, default_rules) for name in suites_node)
    baseline = src.path.parent / (r.string(("baseline",)) if "baseline" in top else "costgate-baseline.json")
    return Config(
        path=src.path,
        baseline=baseline.resolve(),
        suites=suites,
        price_source=str(pricing["source"]) if "source" in pricing else None,
        price_date=str(pricing["date"]) if "date" in pricing else None,
        on_missing_baseline=r.string(("on_missing_baseline",), ("pass", "fail")) if "on_missing_baseline" in top else "pass",
        time_budget_s=r.number(("time_budget_s",), Decimal("0.001")) if "time_budget_s" in top else None,
        on_time_budget=r.string(("on_time_budget",), ("judge", "fail")) if "on_time_budget" in top else "judge",
        models=MappingProxyType(models),
    )


def _name(r: Reader, key: Key, name: Any) -> str:
    """Suite and model names end up in node ids, logs and comments: plain text only."""
    if not isinstance(name, str):
        raise r.fail(key + (name,), f"the name {name!r} is read by YAML as {type(name).__name__}, not text; quote "
                     f"it, e.g. '{str(name).lower() if isinstance(name, bool) else name}':.")
    if not NAME.fullmatch(name) or len(name) > 100:
        raise r.fail(key + (name,), f"the name {name[:60]!r} may hold only letters, digits, '_', '.', '-' and inner "
                     "spaces (at most 100 characters); rename it.")
    return name


def _json_value(r: Reader, key: Key, value: Any, depth: int = 0) -> None:
    """Values sent to a backend as JSON: text, numbers, true/false, null, lists and mappings of them."""
    if depth > 20:
        raise r.fail(key, "nested too deeply.")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise r.fail(key + (k,), f"keys must be text; quote {k!r}.")
            _json_value(r, key + (k,), v, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _json_value(r, key + (i,), v, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise r.fail(key, f"{value} is not a number JSON can carry.")
    elif not isinstance(value, (str, int, float, bool)) and value is not None:
        raise r.fail(key, f"{value!s} is read by YAML as a {type(value).__name__}, which can't be sent as JSON; quote "
                     f"it: '{value!s}'.")


def _model(r: Reader, name: str, price_date: Any = None) -> ModelSpec:
    from .registry import backend_class

    key: Key = ("models", name)
    node = r.value(key)
    if not isinstance(node, dict) or "backend" not in node:
        raise r.fail(key, "each model needs 'backend:' (openai, python, onnx or a plugin's name).")
    backend = r.string(key + ("backend",))
    try:
        cls = backend_class(backend)
    except LookupError as exc:
        raise r.fail(key + ("backend",), str(exc)) from None
    r.mapping(key, MODEL | frozenset(cls.OPTIONS))
    options = {k: v for k, v in node.items() if k not in MODEL}
    check = getattr(cls, "check_options", None)
    if check is not None:
        check(options, lambda option, message: r.fail(key + (option,), message))
    for option, value in options.items():  # api_key_env and the like: their values are secrets everywhere
        if option.endswith("_env") and isinstance(value, str):
            register(os.environ.get(value))
    return ModelSpec(
        name=name, backend=backend, options=MappingProxyType(options),
        tokenizer=_tokenizer(r, key + ("tokenizer",)) if "tokenizer" in node else _default_tokenizer(options, name),
        pricing=read_pricing(r, key + ("pricing",), str(options.get("model", name)), price_date)
        if "pricing" in node else None,
        where=r.src.where(key), base_dir=r.base, tokenizer_default="tokenizer" not in node,
    )


def _default_tokenizer(options: Mapping[str, Any], name: str) -> TokenizerSpec:
    """With `tokenizer:` left out: the encoding tiktoken maps the API model name to (gpt-4o-mini: o200k_base;
    a lookup table, nothing downloaded), else cl100k_base. The API model name is `model:`, else the entry's
    name, as the openai backend sends it."""
    import tiktoken.model

    model = options.get("model", name)
    try:
        return TokenizerSpec(encoding=tiktoken.model.encoding_name_for_model(model) if isinstance(model, str)
                             else "cl100k_base")
    except KeyError:
        return TokenizerSpec(encoding="cl100k_base")


def _tokenizer(r: Reader, key: Key) -> TokenizerSpec:
    if isinstance(r.value(key), str):
        return TokenizerSpec(encoding=r.string(key))
    node = r.mapping(key, {"encoding", "file", "tokenizer_json", "chat_template", "per_message", "per_name",
                           "reply_priming"})
    if ("encoding" in node) == ("tokenizer_json" in node):
        raise r.fail(key, "give either 'encoding' (a tiktoken name, optionally with 'file:' a local "
                     ".tiktoken) or 'tokenizer_json' (a Hugging Face tokenizer.json path).")
    if "file" in node and "encoding" not in node:
        raise r.fail(key + ("file",), "'file' needs 'encoding' naming the tiktoken encoding it holds.")
    if "chat_template" in node and "tokenizer_json" not in node:
        raise r.fail(key + ("chat_template",), "a model's chat template goes with its own tokenizer: give "
                     "'tokenizer_json' too (tiktoken counts chats the way OpenAI bills them).")
    hf = "tokenizer_json" in node
    # OpenAI's chat overhead by default for tiktoken; a local model's tokenizer has none unless set.
    counts = dict.fromkeys(("per_message", "per_name", "reply_priming"), 0) if hf else {}
    counts.update({k: int(r.number(key + (k,), integer=True, maximum=Decimal(1000)))
                   for k in ("per_message", "per_name", "reply_priming") if k in node})
    return TokenizerSpec(
        encoding=r.string(key + ("encoding",)) if "encoding" in node else None,
        file=r.path(key + ("file",), "tiktoken file") if "file" in node else None,
        tokenizer_json=r.path(key + ("tokenizer_json",), "tokenizer.json") if hf else None,
        chat_template=r.path(key + ("chat_template",), "chat template") if "chat_template" in node else None,
        **counts,
    )


def _rules(r: Reader, key: Key, inherited: Mapping[str, MetricRule]) -> Mapping[str, MetricRule]:
    node = r.mapping(key, frozenset(METRICS))
    rules = dict(inherited)
    for metric, value in node.items():
        mkey = key + (metric,)
        if value in ("off", False, None):
            rules.pop(metric, None)
            continue
        levels = r.mapping(mkey, frozenset(LEVELS)) if isinstance(value, dict) else {"fail": value}
        parsed = {}
        for level, text in levels.items():
            try:
                parsed[level] = parse_threshold(metric, text)
            except ValueError as exc:
                raise r.fail(mkey + ((level,) if isinstance(value, dict) else ()), f"{exc}.") from None
        rules[metric] = MetricRule(**parsed)
    return MappingProxyType(rules)


def _template(r: Reader, key: Key, node: dict[str, Any]) -> TemplateSpec | None:
    if "template" in node and "chat_template" in node:
        raise r.fail(key, "give either 'template' (text) or 'chat_template' (messages), not both.")
    if "template" in node:
        return TemplateSpec(text=r.path(key + ("template",), "template"))
    if "chat_template" not in node:
        return None
    items = r.value(key + ("chat_template",))
    if not isinstance(items, list) or not items:
        raise r.fail(key + ("chat_template",), "expected a list of {role, template: FILE} or {role, text: JINJA}.")
    chat = []
    for i, _ in enumerate(items):
        ikey = key + ("chat_template", i)
        item = r.mapping(ikey, {"role", "template", "text"}, required=("role",))
        role = r.string(ikey + ("role",))
        if ("template" in item) == ("text" in item):
            raise r.fail(ikey, "each message needs exactly one of 'template' (a file) or 'text' (inline Jinja).")
        if "template" in item:
            path = r.path(ikey + ("template",), "template")
            try:
                source = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise r.fail(ikey + ("template",), f"cannot read {path} as UTF-8 text ({exc}). Save it as UTF-8.") from None
            chat.append((role, source, str(path)))
        else:
            chat.append((role, str(r.value(ikey + ("text",))), f"{r.src.path} ({r.src.where(ikey)})"))
    return TemplateSpec(chat=tuple(chat))


def _quality(r: Reader, key: Key) -> QualityRule:
    node = r.mapping(key, {"min_exact_match", "min_similarity"})
    values = {}
    for name in node:
        values[name] = r.number(key + (name,))
        if values[name] > 1:
            raise r.fail(key + (name,), f"expected a fraction between 0 and 1, got {values[name]}.")
    return QualityRule(**values)


def _suite(r: Reader, name: str, models: Mapping[str, ModelSpec], defaults: dict[str, Any],
           default_rules: Mapping[str, MetricRule]) -> SuiteSpec:
    key: Key = ("suites", name)
    node = r.mapping(key, SUITE, required=("model", "prompts"))
    model = r.string(key + ("model",))
    if model not in models:
        raise r.fail(key + ("model",), f"no model named '{model}' under models:.{did_you_mean(model, models)}")
    params = r.value(key + ("params",)) if "params" in node else {}
    if not isinstance(params, dict):
        raise r.fail(key + ("params",), "expected a mapping of generation parameters (max_tokens, temperature, ...).")
    _json_value(r, key + ("params",), params)

    def setting(name: str) -> Key | None:
        return key + (name,) if name in node else (("defaults", name) if name in defaults else None)

    err, warm, tok = setting("max_error_rate"), setting("warmup"), setting("tokens_only")
    rep, qual, budget = setting("repeats"), setting("quality"), setting("time_budget_s")
    mode, split = setting("replay"), setting("shards")
    cache, limits, probe = setting("prefix_cache"), setting("budgets"), setting("calibration")
    no_usage = setting("without_usage")
    routing = None
    if "routing" in node:
        routing = r.mapping(key + ("routing",), {"default"}, required=("default",))
        default = r.string(key + ("routing", "default"))
        if default not in models:
            raise r.fail(key + ("routing", "default"), f"no model named '{default}' under models:."
                         f"{did_you_mean(default, models)} A router reports which of the models: answered.")
    own = node.get("thresholds")
    for metric, lever, needs in (("cacheable_prefix_share", cache, "prefix_cache: {min_tokens: 1024, block: 128}"),
                                 ("escalation_rate", routing, "routing: {default: MODEL}"),
                                 ("cost_per_resolved", qual, "a quality: rule (and references, or a baseline)")):
        if isinstance(own, dict) and own.get(metric) not in (None, "off", False) and not lever:
            raise r.fail(key + ("thresholds", metric), f"{metric} needs {needs} in this suite or in defaults; "
                         "without it there is nothing to gate.")
    max_error_rate = r.number(err) if err else Decimal(0)
    if err and max_error_rate > 1:
        raise r.fail(err, f"expected a fraction between 0 and 1 (0.02 allows 2% failed requests), got {max_error_rate}.")
    return SuiteSpec(
        name=name, model=models[model],
        prompts=r.path(key + ("prompts",), "prompt set"),
        template=_template(r, key, node),
        params=MappingProxyType(dict(params)),
        requests_per_month=r.number(key + ("requests_per_month",)) if "requests_per_month" in node else None,
        tokens_only=r.boolean(tok) if tok else False,
        thresholds=_rules(r, key + ("thresholds",), default_rules) if "thresholds" in node else default_rules,
        max_error_rate=max_error_rate,
        warmup=int(r.number(warm, integer=True, maximum=Decimal(100_000))) if warm else 0,
        repeats=int(r.number(rep, Decimal(1), integer=True, maximum=Decimal(1000))) if rep else 1,
        quality=_quality(r, qual) if qual else None,
        time_budget_s=r.number(budget, Decimal("0.001")) if budget else None,
        replay=r.string(mode, ("full", "changed")) if mode else "full",
        shards=int(r.number(split, Decimal(1), integer=True, maximum=Decimal(1024))) if split else 1,
        routing_default=str(routing["default"]) if routing else None,
        routes=routes_of(models) if routing else None,
        prefix_cache=prefix_cache(r, cache) if cache else None,
        budgets=merged_budgets(r, key, node, defaults) if limits else None,
        calibration_max_factor=calibration_bound(r, probe) if probe else
        (DEFAULT_MAX_FACTOR if models[model].backend in CALIBRATED else None),
        without_usage=r.string(no_usage, ("fail", "tokenizer")) if no_usage else "fail",
        where=r.src.where(key),
    )


