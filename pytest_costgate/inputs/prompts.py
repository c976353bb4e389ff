"""Prompt sets: JSONL or YAML records recorded from traffic, validated with file and line."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ..config.yamlsrc import did_you_mean, parse_yaml
from ..safety.errors import PromptSetError
from ..safety.escape import visible

BLOCK = 1 << 20
FIELDS = frozenset({"id", "vars", "messages", "prompt", "weight", "reference", "metadata"})
MESSAGE_FIELDS = frozenset({"role", "content", "name"})


ONE = Decimal(1)
_decode_json = json.JSONDecoder().raw_decode
_json_space = json.decoder.WHITESPACE.match  # type: ignore[attr-defined]  # what json.loads allows after the value
CHUNK = 4096  # records rendered and counted at a time when streaming


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 5x more, a million times over
class PromptRecord:
    """One recorded request: template variables, or ready messages / prompt text. Read-only by convention."""

    id: str
    line: int
    vars: Mapping[str, Any]
    messages: tuple[Mapping[str, str], ...] | None = None
    prompt: str | None = None
    weight: Decimal = ONE
    reference: str | None = None


@dataclass(frozen=True)
class PromptSet:
    path: Path
    records: tuple[PromptRecord, ...]
    sha256: str


class PromptStream:
    """A prompt set read chunk by chunk (so a million records never sit in memory at once); `sha256` and
    `count` are known once every chunk was read. Ids are checked unique across the whole file."""

    def __init__(self, path: Path, chunk: int = CHUNK) -> None:
        self.path, self.chunk = path, chunk
        self.sha256: str | None = None
        self.count = 0

    def size(self) -> int:
        """The file's size in bytes (0 when it can't be read: opening it says why)."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def estimate(self) -> int:
        """About how many records the file holds (its lines; a YAML set is counted by reading it), for progress."""
        if self.path.suffix in (".yaml", ".yml"):
            return 0
        try:
            with open(self.path, "rb") as handle:
                return sum(block.count(b"\n") for block in iter(lambda: handle.read(BLOCK), b""))
        except OSError:
            return 0

    def chunks(self) -> Iterator[list[PromptRecord]]:
        path = self.path
        digest = hashlib.sha256()
        seen: dict[str, int] = {}
        batch: list[PromptRecord] = []
        for line, item in self._items(digest):
            record = _record(item, path, line)
            first = seen.setdefault(record.id, line)
            if first != line:
                raise PromptSetError(f"{path}:{line}: duplicate id '{visible(record.id)}' (first on line {first}). "
                                     "Prompt ids must be unique; rename one.")
            batch.append(record)
            if len(batch) == self.chunk:
                self.count += len(batch)
                yield batch
                batch = []
        self.count += len(batch)
        if batch:
            yield batch
        if not self.count:
            raise PromptSetError(f"{path}: the prompt set has no records. Record some traffic into it.")
        self.sha256 = digest.hexdigest()

    def _items(self, digest: Any) -> Iterator[tuple[int, Any]]:
        path = self.path
        try:
            if path.exists() and not path.is_file():
                raise PromptSetError(f"{path}: the prompt set is not a regular file (a folder, device or pipe?).")
            handle = open(path, "rb")
        except FileNotFoundError as exc:
            raise PromptSetError(f"{path}: prompt set not found. Fix 'prompts:' in the suite or create it.") from exc
        except OSError as exc:
            raise PromptSetError(f"{path}: cannot read prompt set: {exc}") from exc
        with handle:
            if path.suffix in (".yaml", ".yml"):
                raw = _read(handle, path)
                digest.update(raw)
                for number, item in _yaml_items(_decode(raw, path, None), path):
                    bad = _broken_text(item)
                    if bad is not None:
                        raise PromptSetError(f"{path}:{number}: {visible(bad)} holds text that is not valid Unicode "
                                             "(a lone surrogate); fix the recording.")
                    yield number, item
                return
            for number, line in enumerate(_lines(handle, digest, path), start=1):
                if not line.strip():
                    continue
                try:
                    try:
                        item, end = _decode_json(line)  # json.loads without its two Python layers
                        if end != len(line) and _json_space(line, end).end() != len(line):
                            raise ValueError
                    except (ValueError, RecursionError):
                        item = json.loads(line)  # the same input through json.loads: its own error, or a value
                except json.JSONDecodeError as exc:
                    raise PromptSetError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno}). "
                                         "Each line of a .jsonl prompt set must be one JSON object.") from None
                except RecursionError:
                    raise PromptSetError(f"{path}:{number}: the record is nested too deeply; flatten it.") from None
                except ValueError as exc:  # e.g. an integer of over 4,300 digits
                    raise PromptSetError(f"{path}:{number}: unreadable JSON value ({exc}).") from None
                if ("\\ud" in line or "\\uD" in line) and not _encodable(item):  # JSON can spell a lone surrogate
                    raise PromptSetError(f"{path}:{number}: {visible(_broken_text(item) or '')} holds text that is not "
                                         "valid Unicode (a lone surrogate such as \\ud800); fix the recording.")
                yield number, item


def _lines(handle: Any, digest: Any, path: Path) -> Iterator[str]:
    """The file's lines as text, read, hashed and decoded a megabyte at a time (a hash update per line would
    give the GIL away a hundred thousand times, while the counting threads hold it)."""
    pending, number = b"", 0
    while True:
        block = _read(handle, path, BLOCK)
        if not block:
            break
        digest.update(block)
        data = pending + block
        cut = data.rfind(b"\n") + 1
        pending = data[cut:]
        try:
            lines = data[:cut].decode("utf-8").split("\n")
        except UnicodeDecodeError:  # line by line: the lines before the bad one are read (and judged) first
            lines = data[:cut].split(b"\n")  # type: ignore[assignment]
            for i, raw in enumerate(lines[:-1], start=number + 1):
                yield _decode(raw, path, i)  # type: ignore[arg-type]
        else:
            yield from lines[:-1]  # the last is what follows the block's last newline: in `pending`
        number += len(lines) - 1
    if pending:
        yield _decode(pending, path, number + 1)


def _read(handle: Any, path: Path, size: int = -1) -> bytes:
    try:
        return handle.read(size)
    except OSError as exc:
        raise PromptSetError(f"{path}: cannot read prompt set: {exc}") from exc


def _decode(raw: bytes, path: Path, line: int | None) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"{path}:{line}" if line else str(path)
        raise PromptSetError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start}). Save the prompt set as "
                             "UTF-8.") from None


def load_prompt_set(path: Path) -> PromptSet:
    """Read a whole .jsonl, .yaml or .yml prompt set; every bad record names file and line."""
    stream = PromptStream(path)
    records = tuple(record for chunk in stream.chunks() for record in chunk)
    return PromptSet(path=path, records=records, sha256=stream.sha256 or "")


def _yaml_items(text: str, path: Path) -> list[tuple[int, Any]]:
    src = parse_yaml(text, path, PromptSetError)
    data = src.data
    key: tuple[Any, ...] = ()
    if isinstance(data, dict) and set(data) == {"prompts"}:
        data, key = data["prompts"], ("prompts",)
    if not isinstance(data, list):
        raise PromptSetError(f"{path}: a YAML prompt set must be a list of records (or 'prompts:' holding one).")
    return [(src.lines.get(key + (i,), 1), item) for i, item in enumerate(data)]


def _record(item: Any, path: Path, line: int) -> PromptRecord:
    if type(item) is dict and len(item) == 2:  # the common case, {"id": "...", "vars": {...}}, checked first
        rid, variables = item.get("id"), item.get("vars")
        if type(rid) is str and 0 < len(rid) <= 1000 and type(variables) is dict:
            return PromptRecord(rid, line, variables)
    if not isinstance(item, dict):
        raise PromptSetError(f"{path}:{line}: expected a JSON object with 'id' and 'vars' or 'messages'.")
    unknown = item.keys() - FIELDS
    if unknown:
        name = str(sorted(map(str, unknown))[0])
        raise PromptSetError(f"{path}:{line}: unknown field '{visible(name)}'.{did_you_mean(name, FIELDS)} "
                             f"Allowed: {', '.join(sorted(FIELDS))}.")
    rid = item.get("id")
    if type(rid) is not str or not rid or len(rid) > 1000:
        if not isinstance(rid, int) or isinstance(rid, bool) or abs(rid) > 10**30:
            raise PromptSetError(f"{path}:{line}: missing 'id' (a non-empty string of at most 1,000 characters "
                                 "naming this prompt).")
        rid = str(rid)
    variables = item.get("vars")
    if variables is None:
        variables = {}
    where = f"{path}:{line}"
    if not isinstance(variables, dict):
        raise PromptSetError(f"{where}: '{rid}': 'vars' must be an object of template variables.")
    messages = item.get("messages")
    if messages is not None:
        messages = _messages(messages, f"{where}: '{rid}'")
    prompt = item.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise PromptSetError(f"{where}: '{rid}': 'prompt' must be a string.")
    if messages is not None and prompt is not None:
        raise PromptSetError(f"{where}: '{rid}': give 'messages' or 'prompt', not both.")
    raw_weight = item.get("weight", 1)
    try:
        if isinstance(raw_weight, bool) or not isinstance(raw_weight, (int, float, str)) or len(str(raw_weight)) > 40:
            raise InvalidOperation
        weight = ONE if raw_weight == 1 else Decimal(str(raw_weight))
        if not weight.is_finite() or not Decimal("1e-9") <= weight <= Decimal("1e12"):
            raise InvalidOperation
    except (ArithmeticError, ValueError):
        shown = repr(raw_weight) if isinstance(raw_weight, (int, float, bool)) and abs(raw_weight) < 10**30 \
            else repr(str(raw_weight)[:40])
        raise PromptSetError(f"{where}: '{visible(rid)}': 'weight' must be a positive number from 1e-9 to 1e12, got {shown}.") from None
    reference = item.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise PromptSetError(f"{where}: '{visible(rid)}': 'reference' must be a string.")
    return PromptRecord(id=rid, line=line, vars=variables, messages=messages, prompt=prompt, weight=weight,
                        reference=reference)


def _encodable(item: Any) -> bool:
    """Whether every string in a record is valid Unicode (_broken_text then finds the field). The usual shape,
    strings in the record and in its vars, is checked without recursion."""
    try:
        for value in item.values() if type(item) is dict else ():
            kind = type(value)
            if kind is str:
                value.encode("utf-8")
            elif kind is dict:
                for key, inner in value.items():
                    key.encode("utf-8") if type(key) is str else None
                    if type(inner) is str:
                        inner.encode("utf-8")
                    elif type(inner) not in (int, float, bool, type(None)):
                        return _broken_text(inner) is None
            elif kind not in (int, float, bool, type(None)):
                return _broken_text(value) is None
    except UnicodeEncodeError:
        return False
    return True


def _broken_text(value: Any, where: str = "") -> str | None:
    """The field holding a string with a lone surrogate (JSON allows them; nothing downstream can encode them)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return where or "the record"
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        path = f"{where}[{key}]" if isinstance(key, int) else (f"{where}.{key}" if where else str(key))
        found = _broken_text(key, f"a key in {where or 'the record'}") if isinstance(key, str) else None
        found = found or _broken_text(item, path)
        if found:
            return found
    return None


def _messages(value: Any, where: str) -> tuple[Mapping[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise PromptSetError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects.")
    out = []
    for i, message in enumerate(value):
        if (not isinstance(message, dict) or not isinstance(message.get("role"), str)
                or not (isinstance(message.get("content"), str) or _parts_ok(message.get("content")))
                or set(message) - MESSAGE_FIELDS):
            raise PromptSetError(f"{where}: messages[{i}] must be {{\"role\": str, \"content\": str}} "
                                 "(optionally \"name\"; content may be a list of parts such as "
                                 "{\"type\": \"text\", \"text\": ...} and {\"type\": \"image_url\", ...}).")
        out.append(dict(message))
    return tuple(out)


def _parts_ok(content: Any) -> bool:
    """Content as a list of typed parts (OpenAI's text, image_url, input_audio; Anthropic's text, image)."""
    return isinstance(content, list) and bool(content) and len(content) <= 1000 and all(
        isinstance(part, dict) and isinstance(part.get("type"), str) and
        (part["type"] != "text" or isinstance(part.get("text"), str)) for part in content)


def media_parts(messages: Any) -> int:
    """How many non-text parts (images, audio) a prompt's messages carry: tokens no offline count includes."""
    return sum(1 for m in messages or () if isinstance(m.get("content"), list)
               for part in m["content"] if part.get("type") != "text")
