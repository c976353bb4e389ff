"""Located checks of JSON values: each reads one value at a JSON path and returns it typed, or raises a
BaselineError naming the file, the path and the fix. Used by schema.py (documents) and schema_prompts.py (their
per-prompt records)."""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ..safety.errors import BaselineError
from ..safety.escape import visible

MAX_NUMBER = Decimal(10) ** 24  # dollars, tokens or requests beyond this are damage, not data
MAX_TOKENS = 100_000_000
MAX_TEXT = 1 << 20
MAX_BYTES = 512 << 20  # a million-prompt report is ~150 MB; past this a document is refused unread
HEX_HASH = re.compile(r"[0-9a-f]{8,64}")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
Path_ = tuple[Any, ...]


def json_path(path: Path_) -> str:
    """suites.s.prompts["a b"].cost"""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.fullmatch(str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{json.dumps(visible(str(part))[:60])}]"
    return out or "(top level)"


def shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return visible(text if len(text) <= 40 else text[:39] + "…")


class JsonReader:
    def __init__(self, source: str, fix: str) -> None:
        self.source, self.fix = source, fix

    def fail(self, path: Path_, message: str) -> BaselineError:
        return BaselineError(f"{self.source}: {json_path(path)}: {message} {self.fix}")

    def obj(self, value: Any, path: Path_, optional: bool = False) -> Mapping[str, Any]:
        if value is None and optional:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected an object, got {shown(value)}.")
        return value

    def items(self, value: Any, path: Path_) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {shown(value)}.")
        return value

    def text(self, value: Any, path: Path_, optional: bool = True, limit: int = 10_000) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or len(value) > limit:
            raise self.fail(path, f"expected text of at most {limit:,} characters, got {shown(value)}.")
        return value

    def choice(self, value: Any, path: Path_, choices: Any, default: str | None = None) -> str:
        if value is None and default is not None:
            return default
        if not isinstance(value, str) or value not in choices:
            raise self.fail(path, f"expected one of {', '.join(sorted(choices))}, got {shown(value)}.")
        return str(value)

    def hexhash(self, value: Any, path: Path_) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not HEX_HASH.fullmatch(value):
            raise self.fail(path, f"expected a hex hash, got {shown(value)}.")
        return value

    def decimal(self, value: Any, path: Path_, signed: bool = False, positive: bool = False) -> Decimal | None:
        if value is None:
            return None
        try:
            if isinstance(value, bool) or not isinstance(value, (str, int, float)) or (
                    isinstance(value, str) and len(value) > 60):
                raise InvalidOperation
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        except (InvalidOperation, ValueError):
            raise self.fail(path, f"expected a decimal string, got {shown(value)}.") from None
        if not number.is_finite() or abs(number) > MAX_NUMBER or (number != 0 and number.adjusted() < -30):
            raise self.fail(path, f"expected a finite decimal of sane size, got {shown(value)}.")
        if (number < 0 and not signed) or (positive and number <= 0):
            raise self.fail(path, f"expected a {'positive' if positive else 'non-negative'} number, got {shown(value)}.")
        return number

    def count(self, value: Any, path: Path_, signed: bool = False, minimum: int = 0) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_NUMBER \
                or (not signed and value < minimum):
            raise self.fail(path, f"expected a whole number{'' if signed else f' >= {minimum}'}, got {shown(value)}.")
        return value

    def real(self, value: Any, path: Path_) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0 \
                or value > 1e12:
            raise self.fail(path, f"expected a non-negative number, got {shown(value)}.")
        return float(value)

    def strings(self, value: Any, path: Path_, limit: int = 10_000) -> dict[str, str]:
        node = self.obj(value, path, optional=True)
        return {self.text(k, path, False, 200) or "": self.text(v, path + (k,), False, limit) or ""
                for k, v in node.items()}
