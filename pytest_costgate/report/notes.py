"""A suite's notes in words, for the terminal and the PR comment: the verdict's own notes, and the typed facts it
carries (template and price changes, the cost levers, where the shared prefix now ends) put into sentences.
Plain text: each medium escapes it when it is shown."""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from ..store.document import SuiteEntry
from ..store.verdicts import Levers
from .numbers import metric_value, money_pair

TOKEN_PRICE = {"input_per_1m": "input", "output_per_1m": "output", "cached_input_per_1m": "cached input",
               "cache_write_per_1m": "cache write", "cache_write_1h_per_1m": "1-hour cache write",
               "reasoning_per_1m": "reasoning", "input_audio_per_1m": "audio input", "input_image_per_1m": "image input",
               "input_video_per_1m": "video input", "cached_audio_input_per_1m": "cached audio input",
               "cached_image_input_per_1m": "cached image input", "input_tool_per_1m": "tool-use input",
               "output_audio_per_1m": "audio output", "output_image_per_1m": "image output",
               "output_video_per_1m": "video output"}
SOURCE = ("source", "source_version", "provider", "source_model", "at")


def price_change_text(before: Mapping[str, str] | None, after: Mapping[str, str] | None) -> str:
    """'genai-prices 0.2.3: output $0.60 → $0.80 per 1M tokens since 2026-11-01', 'GPU $2.50 → $3.00 per hour'
    (plain text: escape to show)."""
    if not before or not after:
        return "prices changed"
    if before.get("kind") != after.get("kind"):
        return f"pricing changed from {before.get('kind')} to {after.get('kind')}"
    tokens = after.get("kind") == "tokens"
    parts = []
    for key, label in (TOKEN_PRICE.items() if tokens else (("usd_per_hour", "GPU"),)):
        if before.get(key) != after.get(key):
            b, h = money_pair(before.get(key), after.get(key), 3)
            parts.append(f"{label} {b} → {h}")
    for key in sorted(k for k in set(before) | set(after) if k.startswith("above_") and before.get(k) != after.get(k)):
        tier, _, rate = key.partition(".")
        b, h = money_pair(before.get(key), after.get(key), 3)
        parts.append(f"{TOKEN_PRICE.get(rate, rate)} above {tier[6:]} input tokens {b} → {h}")
    if before.get("per_request") != after.get("per_request"):
        b, h = money_pair(before.get("per_request"), after.get("per_request"), 3)
        parts.append(f"fee per request {b} → {h}")
    text = ", ".join(parts) + ((" per 1M tokens" if tokens else " per hour") if parts else "")
    if after.get("source"):
        model = (f" ({before.get('source_model')} → {after.get('source_model')})"
                 if before.get("source_model") and before.get("source_model") != after.get("source_model") else "")
        text = f"{after['source']} {after.get('source_version', '')}{model}: {text or 'the same prices'}" + \
            (f" since {after['at']}" if after.get("at") and after.get("at") != before.get("at") else "")
    others = sorted(k for k in set(before) | set(after) if k not in TOKEN_PRICE and k not in ("kind", "usd_per_hour")
                    and k not in SOURCE and not k.startswith(("above_", "context.")) and k != "per_request"
                    and before.get(k) != after.get(k))
    if others:
        text += (", " if text else "") + ", ".join(f"{k} {before.get(k, '–')} → {after.get(k, '–')}" for k in others)
    return text or "prices changed"


def changed_files_text(entry: SuiteEntry) -> str:
    """'templates/support.j2 changed', from a judged entry's attribution, or the two template hashes."""
    a = entry.attribution
    said = [] if a is None else ([f"{f} changed" for f in a.files_changed] + [f"{f} added" for f in a.files_added]
                                 + [f"{f} removed" for f in a.files_removed])
    if said:
        return ", ".join(said)
    return f"{entry.baseline_template_hash} → {entry.template_hash}"


def _share(value: Decimal | None) -> str:
    return "-" if value is None else metric_value("escalation_rate", value)


def lever_lines(levers: tuple[Levers | None, Levers]) -> list[str]:
    """The cost levers in words: cache shares and the served-model mix, baseline → candidate."""
    base, cand = levers
    out = []
    for metric, label in (("cacheable_prefix_share", "cacheable prefix (prefix_cache rule)"),
                          ("cache_hit_ratio", "cache hit ratio (server-reported cached input tokens)")):
        after = getattr(cand, metric)
        before = getattr(base, metric) if base is not None else None
        if after is None and before is None:
            continue
        shown = f"{_share(before)} → {_share(after)}" if base is not None else _share(after)
        out.append(f"{label}: {shown} of input tokens")
    models = sorted(set(cand.served) | set(base.served if base is not None else {}))
    if models:
        zero = Decimal(0)
        mix = ", ".join(f"{m} {_share(base.served.get(m, zero))} → {_share(cand.served.get(m, zero))}"
                        if base is not None else f"{m} {_share(cand.served[m])}" for m in models)
        escalation = (f"; escalation {_share(base.escalation_rate)} → {_share(cand.escalation_rate)}"
                      if base is not None else f"; escalation {_share(cand.escalation_rate)}") \
            if cand.escalation_rate is not None else ""
        out.append(f"served by: {mix}{escalation}")
    return out


PREFIX_END = "the prefix every prompt shares now ends at"


def note_lines(entry: SuiteEntry, inputs_shown: bool = False) -> list[str]:
    """Every note of a judged suite, in reading order: what changed in its inputs (left out where the comment's
    inputs table says it: `inputs_shown`), the judge's own notes, the cost levers, where the shared prefix ends."""
    verdict = entry.verdict
    if verdict is None:
        return []
    lines = []
    if not inputs_shown:
        if verdict.template_changed:
            lines.append(f"template changed: {changed_files_text(entry)}")
        if verdict.prices_changed:
            base = entry.attribution.base_pricing if entry.attribution is not None else None
            lines.append(f"prices changed: {price_change_text(base, entry.pricing)}")
    lines += verdict.notes
    if verdict.levers is not None:
        lines += lever_lines(verdict.levers)
    if verdict.prefix_end is not None:
        lines.append(f"{PREFIX_END} {verdict.prefix_end}")
    return lines
