"""Prompt sets: JSONL or YAML records recorded from traffic, validated with file and line."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from .errors import PromptSetError
from .escape import visible
from .yamlsrc import did_you_mean, parse_yaml

FIELDS = frozenset({"id", "vars", "messages", "prompt", "weight", "reference", "metadata"})
MESSAGE_FIELDS = frozenset({"role", "content", "name"})


@dataclass(frozen=True)
class PromptRecord:
    """One recorded request: template variables, or ready messages / prompt text."""

    id: str
    line: int
    vars: Mapping[str, Any]
    messages: tuple[Mapping[str, str], ...] | None = None
    prompt: str | None = None
    weight: Decimal = Decimal(1)
    reference: str | None = None


@dataclass(frozen=True)
class PromptSet:
    path: Path
    records: tuple[PromptRecord, ...]
    sha256: str


def load_prompt_set(path: Path) -> PromptSet:
    """Read a .jsonl, .yaml or .yml prompt set; every bad record names file and line."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except FileNotFoundError as exc:
        raise PromptSetError(f"{path}: prompt set not found. Fix 'prompts:' in the suite or create it.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptSetError(f"{path}: cannot read prompt set: {exc}") from exc
    if path.suffix in (".yaml", ".yml"):
        items = _yaml_items(text, path)
    else:
        items = _jsonl_items(text, path)
    records: list[PromptRecord] = []
    seen: dict[str, int] = {}
    for line, item in items:
        record = _record(item, path, line)
        if record.id in seen:
            raise PromptSetError(f"{path}:{line}: duplicate id '{record.id}' (first on line "
                                 f"{seen[record.id]}). Prompt ids must be unique; rename one.")
        seen[record.id] = line
        records.append(record)
    if not records:
        raise PromptSetError(f"{path}: the prompt set has no records. Record some traffic into it.")
    return PromptSet(path=path, records=tuple(records), sha256=hashlib.sha256(raw).hexdigest())


def _jsonl_items(text: str, path: Path) -> list[tuple[int, Any]]:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise PromptSetError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno}). "
                                 "Each line of a .jsonl prompt set must be one JSON object.") from None
        except RecursionError:
            raise PromptSetError(f"{path}:{number}: the record is nested too deeply; flatten it.") from None
    return items


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
    where = f"{path}:{line}"
    if not isinstance(item, dict):
        raise PromptSetError(f"{where}: expected a JSON object with 'id' and 'vars' or 'messages'.")
    for name in item:
        if name not in FIELDS:
            raise PromptSetError(f"{where}: unknown field '{name}'.{did_you_mean(str(name), FIELDS)} "
                                 f"Allowed: {', '.join(sorted(FIELDS))}.")
    rid = item.get("id")
    if not isinstance(rid, (str, int)) or isinstance(rid, bool) or str(rid) == "" or len(str(rid)) > 1000:
        raise PromptSetError(f"{where}: missing 'id' (a non-empty string of at most 1,000 characters naming this "
                             "prompt).")
    rid = str(rid)
    bad = _broken_text(item)
    if bad is not None:
        raise PromptSetError(f"{where}: {visible(bad)} holds text that is not valid Unicode (a lone surrogate such as "
                             "\\ud800); fix the recording.")
    variables = item.get("vars", {})
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
    try:
        weight = Decimal(str(item.get("weight", 1)))
        if isinstance(item.get("weight", 1), bool) or not weight.is_finite() or weight <= 0:
            raise InvalidOperation
    except InvalidOperation:
        raise PromptSetError(f"{where}: '{rid}': 'weight' must be a positive number, got "
                             f"{item.get('weight')!r}.") from None
    reference = item.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise PromptSetError(f"{where}: '{rid}': 'reference' must be a string.")
    return PromptRecord(id=rid, line=line, vars=MappingProxyType(variables), messages=messages,
                        prompt=prompt, weight=weight, reference=reference)


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
                or not isinstance(message.get("content"), str) or set(message) - MESSAGE_FIELDS):
            raise PromptSetError(f"{where}: messages[{i}] must be {{\"role\": str, \"content\": str}} "
                                 "(optionally \"name\").")
        out.append(MappingProxyType(dict(message)))
    return tuple(out)
