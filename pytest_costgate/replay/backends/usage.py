"""One usage reader per provider shape: each turns what a server reports into the one usage record
(pricing/usage.py), the way genai-prices' extractors read the same shapes (tests/test_usage_shapes.py checks
that they agree). A field the server left out stays None, never 0; the counts are checked where they are billed
(replay/measure.py).

- OpenAI Chat Completions `usage`: prompt_tokens (cached included), prompt_tokens_details.{cached_tokens,
  audio_tokens}, completion_tokens (reasoning included), completion_tokens_details.{reasoning_tokens, audio_tokens}.
- OpenAI Responses `usage`: input_tokens, input_tokens_details.cached_tokens, output_tokens,
  output_tokens_details.reasoning_tokens.
- Anthropic Messages `usage`: input_tokens counts the *uncached* input only; cache_creation_input_tokens and
  cache_read_input_tokens are apart (cache_creation.ephemeral_1h_input_tokens: the 1-hour part);
  output_tokens_details.thinking_tokens the reasoning. A stream reports it in message_start and again,
  cumulatively, in message_delta.
- Gemini `usageMetadata`: promptTokenCount (cached included) + toolUsePromptTokenCount are the input;
  candidatesTokenCount + thoughtsTokenCount the output (thoughts are billed as output); promptTokensDetails and
  candidatesTokensDetails split them by modality.
"""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ...pricing.usage import Usage


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _sum(*values: Any) -> Any:
    """The sum of the values reported (None when none was; a non-number is passed on, to be refused)."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return sum(present)
    return next(v for v in present if not (isinstance(v, int) and not isinstance(v, bool)))


def _details(**counts: Any) -> Mapping[str, Any]:
    return MappingProxyType({k: v for k, v in counts.items() if v is not None})


def openai_chat(usage: Any) -> Usage | None:
    """Chat Completions (and legacy Completions) usage."""
    if not isinstance(usage, Mapping):
        return None
    return Usage(input_tokens=usage.get("prompt_tokens"), output_tokens=usage.get("completion_tokens"),
                 cache_read_tokens=_get(usage, "prompt_tokens_details", "cached_tokens"),
                 cache_write_tokens=_get(usage, "prompt_tokens_details", "cache_write_tokens"),
                 output_reasoning_tokens=_get(usage, "completion_tokens_details", "reasoning_tokens"),
                 details=_details(input_audio_tokens=_get(usage, "prompt_tokens_details", "audio_tokens"),
                                  output_audio_tokens=_get(usage, "completion_tokens_details", "audio_tokens")))


def openai_responses(usage: Any) -> Usage | None:
    """Responses API usage (`response.usage`)."""
    if not isinstance(usage, Mapping):
        return None
    return Usage(input_tokens=usage.get("input_tokens"), output_tokens=usage.get("output_tokens"),
                 cache_read_tokens=_get(usage, "input_tokens_details", "cached_tokens"),
                 cache_write_tokens=_get(usage, "input_tokens_details", "cache_write_tokens"),
                 output_reasoning_tokens=_get(usage, "output_tokens_details", "reasoning_tokens"))


def anthropic(*reports: Any) -> Usage | None:
    """Messages API usage: the reports in the order they came (message_start's, then message_delta's); a later
    report's fields replace earlier ones (the delta's counts are cumulative)."""
    merged: dict[str, Any] = {}
    for report in reports:
        if isinstance(report, Mapping):
            merged.update({k: v for k, v in report.items() if v is not None})
    if not merged:
        return None
    uncached, write, read = (merged.get("input_tokens"), merged.get("cache_creation_input_tokens"),
                             merged.get("cache_read_input_tokens"))
    return Usage(input_tokens=_sum(uncached, write, read) if uncached is not None else None,
                 output_tokens=merged.get("output_tokens"), cache_read_tokens=read, cache_write_tokens=write,
                 cache_write_1h_tokens=_get(merged, "cache_creation", "ephemeral_1h_input_tokens"),
                 output_reasoning_tokens=_get(merged, "output_tokens_details", "thinking_tokens"))


_MODALITY = {"AUDIO": "audio", "IMAGE": "image", "VIDEO": "video", "DOCUMENT": "image"}  # as genai-prices reads them


def _modalities(items: Any, direction: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items if isinstance(items, list) else ():
        kind = _MODALITY.get(str(_get(item, "modality")))
        if kind is not None:
            name = f"{direction}_{kind}_tokens"
            out[name] = _sum(out.get(name), _get(item, "tokenCount"))
    return out


def gemini(metadata: Any) -> Usage | None:
    """Gemini `usageMetadata` (generateContent, or the last chunk of streamGenerateContent)."""
    if not isinstance(metadata, Mapping):
        return None
    prompt, tool = metadata.get("promptTokenCount"), metadata.get("toolUsePromptTokenCount")
    candidates, thoughts = metadata.get("candidatesTokenCount"), metadata.get("thoughtsTokenCount")
    details = {**_modalities(metadata.get("promptTokensDetails"), "input"),
               **_modalities(metadata.get("candidatesTokensDetails"), "output")}
    if tool is not None:
        details["input_tool_tokens"] = tool
    details = {k: v for k, v in details.items() if v is not None}
    return Usage(input_tokens=_sum(prompt, tool) if prompt is not None or tool is not None else None,
                 output_tokens=_sum(candidates, thoughts) if candidates is not None or thoughts is not None else None,
                 cache_read_tokens=metadata.get("cachedContentTokenCount"), output_reasoning_tokens=thoughts,
                 details=MappingProxyType(details))
