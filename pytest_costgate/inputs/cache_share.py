"""How much of a suite's input a provider's prefix cache could serve, computed from the rendered prompts alone.

A prompt's shared prefix is the longest token prefix it has in common with any other prompt of the suite
(after sorting the token sequences, always one of its two neighbours). Under an OpenAI-style rule
(`prefix_cache: {min_tokens: 1024, block: 128}`) the cacheable part is 0 below `min_tokens`, else
`min_tokens` plus whole `block`s of the rest. The suite's `cacheable_prefix_share` is Σ weight x cacheable
over Σ weight x input tokens. It ignores warm-up (the first request that writes the cache) and eviction: it
is what the prompt layout allows, the figure a template edit can destroy.
"""
from __future__ import annotations

import hashlib
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..config.specs import PrefixCache


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


def shared_prefixes(sequences: Sequence[tuple[int, ...]]) -> list[int]:
    """Each sequence's longest common prefix with any other sequence."""
    order = sorted(range(len(sequences)), key=lambda i: sequences[i])
    shared = [0] * len(sequences)
    for left, right in zip(order, order[1:]):
        common = _common(sequences[left], sequences[right])
        shared[left] = max(shared[left], common)
        shared[right] = max(shared[right], common)
    return shared


def checkpoints(sequence: Sequence[int], rule: PrefixCache) -> list[bytes]:
    """A digest of each prefix a cache could serve (min_tokens, then each further block), each chained to the
    one before: two prompts share the digest at a length exactly when they share that prefix (to 2^-128)."""
    out: list[bytes] = []
    if len(sequence) < rule.min_tokens:
        return out
    ids = array("Q", sequence)
    digest = hashlib.blake2b(ids[:rule.min_tokens].tobytes(), digest_size=16).digest()
    out.append(digest)
    for end in range(rule.min_tokens + rule.block, len(ids) + 1, rule.block):
        digest = hashlib.blake2b(digest + ids[end - rule.block:end].tobytes(), digest_size=16).digest()
        out.append(digest)
    return out


def cacheable_tokens(sequences: Iterable[Sequence[int]], rule: PrefixCache) -> list[int]:
    """Each sequence's tokens a prefix cache could serve: the longest of its cacheable prefixes another sequence
    shares (the same as cacheable(shared_prefixes(...)), in bounded memory: only the sequences' prefix digests
    are kept, ~16 bytes per block, never the token ids; `sequences` may be a generator)."""
    kept = [checkpoints(s, rule) for s in sequences]
    seen = Counter(d for digests in kept for d in digests)
    out = []
    for digests in kept:
        k = next((i for i in range(len(digests) - 1, -1, -1) if seen[digests[i]] > 1), None)
        out.append(0 if k is None else rule.min_tokens + k * rule.block)
    return out


def token_ids(counter: Any, rendered: Sequence[Any], as_chat: bool = False,
              tools: Sequence[Any] | None = None) -> Iterator[list[int]]:
    """The tokens of each rendered prompt as the counter's tokenizer makes them (a chat: rendered with the
    model's chat template when it has one, tool definitions included, else role and content of each message in
    order). `as_chat`: a text prompt is sent as the user message, so a chat template renders it as one."""
    engine = counter.engine
    chat = getattr(counter, "chat", None)

    def encode(text: str) -> list[int]:
        if hasattr(engine, "encode_ordinary"):
            return list(engine.encode_ordinary(text))
        return list(engine.encode(text, add_special_tokens=False).ids)

    for prompt in rendered:
        if isinstance(prompt, str) and as_chat and chat is not None:
            yield encode(chat.render(({"role": "user", "content": prompt},), tools=tools))
        elif isinstance(prompt, str):
            yield encode(prompt)
        elif chat is not None:
            yield encode(chat.render(prompt, tools=tools))
        else:
            ids: list[int] = []
            for message in prompt:
                ids += encode(f"{message.get('role', '')}\n{message.get('content', '')}\n")
            yield ids


def _common_text(texts: Sequence[str]) -> str:
    if not texts:
        return ""
    low, high = min(texts), max(texts)  # the common prefix of all is that of the extremes
    n = 0
    while n < min(len(low), len(high)) and low[n] == high[n]:
        n += 1
    return low[:n]


_TAG = re.compile(r"\{[{%#]")
_INCLUDE = re.compile(r"""\{%-?\s*include\s+(["'])([^"']+)\1\s*-?%\}""")


def _locate(path: Path, shared: str, shown: Any, depth: int = 0) -> str | int | None:
    """Where in the template file `path` (following literal includes) the rendered text stops being `shared`:
    'line N of FILE'; or, when the whole file renders to a prefix of it, how many characters it covered; None
    when the text doesn't follow the file's literal text (a variable came first and rendered alike)."""
    source = _read(path)
    source = source[:-1] if source.endswith("\n") else source  # Jinja drops a template's last newline
    pos = used = 0
    while True:
        tag = _TAG.search(source, pos)
        literal = source[pos:tag.start() if tag else len(source)]
        rest = shared[used:]
        if len(rest) < len(literal) and literal.startswith(rest):  # it ends within this literal text
            end = pos + len(rest)
            return f"line {source[:end].count(chr(10)) + 1} of {shown(str(path))}"
        if not rest.startswith(literal):
            return None
        used += len(literal)
        if tag is None:
            return used
        include = _INCLUDE.match(source, tag.start())
        if include is None or depth > 10:  # a variable or a block: the prompts differ from here on
            return f"line {source[:tag.start()].count(chr(10)) + 1} of {shown(str(path))}"
        inner = _locate(path.parent / include[2], shared[used:], shown, depth + 1)
        if not isinstance(inner, int):
            return inner
        used += inner
        pos = include.end()


def prefix_end(template: Any, rendered: Sequence[Any], shown: Any) -> str | None:
    """Where the prompts' shared prefix now ends, for a note: 'line 1 of templates/support.j2' (in the file the
    text comes from, following literal includes) or 'line 1 of the user message (...)'. `shown(path)` is how a
    template path is named in reports. None when unclear."""
    if not rendered:
        return None
    if template.text is not None:
        if not all(isinstance(p, str) for p in rendered):
            return None
        found = _locate(Path(template.text), _common_text(rendered), shown)
        return found if isinstance(found, str) else None
    if not all(isinstance(p, (list, tuple)) for p in rendered):
        return None
    for index, (role, source, origin) in enumerate(template.chat):
        contents = [str(p[index].get("content", "")) if index < len(p) else "" for p in rendered]
        if len(set(contents)) == 1:
            continue  # this message is the same in every prompt: the shared prefix goes on past it
        literal = _TAG.split(source, maxsplit=1)[0]
        shared = _common_text(contents)
        where = shown(origin)
        if literal.startswith(shared) or shared.startswith(literal):
            return f"line {source[:min(len(shared), len(literal))].count(chr(10)) + 1} of the {role} message ({where})"
        return f"the {role} message ({where})"
    return None


def _read(path: Any) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
