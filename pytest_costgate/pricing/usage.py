"""What one request is billed for, whatever the provider's usage shape: one typed record, and the split of it into
the parts each price applies to.

The fields are genai-prices' usage keys, and so is their meaning: `input_tokens` is every input token (cached
and cache-written ones included), `output_tokens` every output token (reasoning included); the other counts are
parts of those. A part's price applies to it, and the rest of its parent is billed at the parent's price: with a
cache-read price, `input_tokens - cache_read_tokens - cache_write_tokens` are billed as plain input. `None` means
the provider did not say, never 0.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

# Each unit by its dimensions (as genai-prices' unit registry has them): a unit is a part of every unit whose
# dimensions it includes, e.g. cache_write_1h_tokens of cache_write_tokens, of input_tokens.
UNITS: Mapping[str, frozenset[tuple[str, str]]] = MappingProxyType({
    name: frozenset(dims.items()) for name, dims in {
        "input_tokens": {"direction": "input"},
        "cache_read_tokens": {"direction": "input", "token_type": "cache_read"},
        "cache_write_tokens": {"direction": "input", "token_type": "cache_write"},
        "cache_write_1h_tokens": {"direction": "input", "token_type": "cache_write", "cache_ttl": "1h"},
        "input_tool_tokens": {"direction": "input", "token_type": "tool"},
        "input_audio_tokens": {"direction": "input", "modality": "audio"},
        "input_image_tokens": {"direction": "input", "modality": "image"},
        "input_video_tokens": {"direction": "input", "modality": "video"},
        "cache_audio_read_tokens": {"direction": "input", "modality": "audio", "token_type": "cache_read"},
        "cache_image_read_tokens": {"direction": "input", "modality": "image", "token_type": "cache_read"},
        "output_tokens": {"direction": "output"},
        "output_reasoning_tokens": {"direction": "output", "token_type": "reasoning"},
        "output_audio_tokens": {"direction": "output", "modality": "audio"},
        "output_image_tokens": {"direction": "output", "modality": "image"},
        "output_video_tokens": {"direction": "output", "modality": "video"},
    }.items()})
DETAIL_UNITS = frozenset(UNITS) - {"input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens",
                                   "output_tokens", "output_reasoning_tokens"}


@dataclass(frozen=True)
class Usage:
    """One request's billed usage, normalised from its provider's shape (None: not reported)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None  # every token written to the cache, whatever its lifetime
    cache_write_1h_tokens: int | None = None  # the part written for an hour (Anthropic's 1h cache)
    output_reasoning_tokens: int | None = None
    details: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # DETAIL_UNITS: modality, tool

    def counts(self) -> dict[str, int]:
        """Every reported count by unit (the ones not reported left out)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "details"}
        out.update(self.details)
        return {k: v for k, v in out.items() if v is not None}

    def problems(self) -> list[str]:
        """Parts that exceed what they are part of (a server's usage that can't be billed as it says)."""
        counts = self.counts()
        out = []
        for part, dims in UNITS.items():
            for whole, whole_dims in UNITS.items():
                if part in counts and whole in counts and whole_dims < dims and counts[part] > counts[whole]:
                    out.append(f"{part} ({counts[part]:,}) exceeds {whole} ({counts[whole]:,})")
        return out


def leaves(counts: Mapping[str, int], priced: set[str] | frozenset[str]) -> dict[str, int]:
    """How many tokens each priced unit bills: its count less what its priced parts bill (genai-prices' split).
    A part whose unit has no price is billed with the unit it is part of."""
    order = sorted((u for u in priced if u in UNITS), key=lambda u: (-len(UNITS[u]), u))
    out: dict[str, int] = {}
    for unit in order:
        inner = sum(out[other] for other in out if UNITS[unit] < UNITS[other])
        out[unit] = max(0, counts.get(unit, 0) - inner)
    return out
