"""How much of a suite's input a provider's prefix cache could serve, computed from the rendered prompts alone.

A prompt's shared prefix is the longest token prefix it has in common with any other prompt of the suite
(after sorting the token sequences, always one of its two neighbours). Under an OpenAI-style rule
(`prefix_cache: {min_tokens: 1024, block: 128}`) the cacheable part is 0 below `min_tokens`, else
`min_tokens` plus whole `block`s of the rest. The suite's `cacheable_prefix_share` is Σ weight x cacheable
over Σ weight x input tokens. It ignores warm-up (the first request that writes the cache) and eviction: it
is what the prompt layout allows, the figure a template edit can destroy.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from .config import PrefixCache

PREFIX_NOTE = "the prefix every prompt shares now ends at"  # a verdict note; the comment's driver line quotes it


def cacheable(shared: int, rule: PrefixCache) -> int:
    """Tokens a prefix cache serves of a `shared`-token common prefix."""
    if shared < rule.min_tokens:
        return 0
    return rule.min_tokens + (shared - rule.min_tokens) // rule.block * rule.block


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    low, high = 0, n  # the first difference, by halving (prompts share thousands of tokens)
    while low < high:
        middle = (low + high) // 2
        if a[:middle + 1] == b[:middle + 1]:
            low = middle + 1
        else:
            high = middle
    return low


def shared_prefixes(sequences: Sequence[Sequence[int]]) -> list[int]:
    """Each sequence's longest common prefix with any other sequence."""
    order = sorted(range(len(sequences)), key=lambda i: sequences[i])
    shared = [0] * len(sequences)
    for left, right in zip(order, order[1:]):
        common = _common(sequences[left], sequences[right])
        shared[left] = max(shared[left], common)
        shared[right] = max(shared[right], common)
    return shared


def cacheable_tokens(sequences: Sequence[Sequence[int]], rule: PrefixCache) -> list[int]:
    return [cacheable(n, rule) for n in shared_prefixes([tuple(s) for s in sequences])]


def token_ids(counter: Any, rendered: Sequence[Any]) -> list[list[int]]:
    """The tokens of each rendered prompt as the counter's tokenizer makes them (a chat: rendered with the
    model's chat template when it has one, else role and content of each message in order)."""
    engine = counter.engine
    chat = getattr(counter, "chat", None)

    def encode(text: str) -> list[int]:
        if hasattr(engine, "encode_ordinary"):
            return list(engine.encode_ordinary(text))
        return list(engine.encode(text, add_special_tokens=False).ids)

    out = []
    for prompt in rendered:
        if isinstance(prompt, str):
            out.append(encode(prompt))
        elif chat is not None:
            out.append(encode(chat.render(prompt)))
        else:
            ids: list[int] = []
            for message in prompt:
                ids += encode(f"{message.get('role', '')}\n{message.get('content', '')}\n")
            out.append(ids)
    return out


def _common_text(texts: Sequence[str]) -> str:
    if not texts:
        return ""
    low, high = min(texts), max(texts)  # the common prefix of all is that of the extremes
    n = 0
    while n < min(len(low), len(high)) and low[n] == high[n]:
        n += 1
    return low[:n]


def _line_in(source: str, shared: str) -> int | None:
    """The line of a template source where rendered text stops being shared by every prompt, when the shared
    text is the source's leading literal text (the usual case: a variable moved up); else None."""
    literal = re.split(r"\{[{%#]", source, maxsplit=1)[0]
    if literal.startswith(shared):
        offset = len(shared)
    elif shared.startswith(literal):  # the first variable renders alike in every prompt: it ends there or later
        offset = len(literal)
    else:
        return None
    return source[:offset].count("\n") + 1


def prefix_end(template: Any, rendered: Sequence[Any], shown: Any) -> str | None:
    """Where the prompts' shared prefix now ends, for a note: 'line 1 of templates/support.j2' (a template file)
    or 'in the user message'. `shown(path)` is how a template path is named in reports. None when unclear."""
    if not rendered:
        return None
    if template.text is not None:
        if not all(isinstance(p, str) for p in rendered):
            return None
        line = _line_in(_read(template.text), _common_text(rendered))
        return None if line is None else f"line {line} of {shown(str(template.text))}"
    if not all(isinstance(p, list) for p in rendered):
        return None
    for index, (role, source, origin) in enumerate(template.chat):
        contents = [str(p[index].get("content", "")) if index < len(p) else "" for p in rendered]
        if len(set(contents)) == 1:
            continue  # this message is the same in every prompt: the shared prefix goes on past it
        line = _line_in(source, _common_text(contents))
        where = shown(origin)
        return f"line {line} of {where}" if line is not None else f"in the {role} message ({where})"
    return None


def _read(path: Any) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
