"""YAML loading that remembers the line of every key, so errors can name file, line and field."""
from __future__ import annotations

import difflib
import functools
import os
import re
import subprocess
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

Key = tuple[Any, ...]
MAX_NUMBER = Decimal(10) ** 12  # prices, traffic, limits: beyond this a value is a typo
_THOUSANDS = re.compile(r"[1-9][0-9]{0,2}(,[0-9]{3})+(\.[0-9]+)?")  # never 0,001: a decimal comma
_UNDERSCORES = re.compile(r"[0-9]+(_[0-9]+)*(\.[0-9]+)?")


class CommaError(ValueError):
    """A comma that is not a thousands separator (a decimal comma: 1,5)."""


def plain_number(text: str) -> Decimal:
    """The one way costgate reads a number a person wrote (prices, traffic, budgets, thresholds): a dot for
    decimals, thousands grouped as 1,200,000 or 1_200_000; a decimal comma ('1,5', '$0,00001') is refused, never
    read as 15 or 1. Raises CommaError or ValueError."""
    text = text.strip()
    if "," in text:
        if not _THOUSANDS.fullmatch(text):
            raise CommaError(f"{text!r}: write decimals with a dot (1.5) and thousands as 1,200,000 or 1_200_000")
        text = text.replace(",", "")
    try:
        return Decimal(text.replace("_", "") if _UNDERSCORES.fullmatch(text) else text)
    except ArithmeticError:
        raise ValueError(f"{text!r} is not a number") from None


class Located:
    """A parsed YAML document plus the 1-based line of every mapping key and sequence item."""

    def __init__(self, path: Path, data: Any, lines: dict[Key, int]) -> None:
        self.path = path
        self.data = data
        self.lines = lines

    def where(self, key: Key) -> str:
        """`file:line: dotted.field` for the nearest known line of key."""
        probe = key
        while probe and probe not in self.lines:
            probe = probe[:-1]
        line = self.lines.get(probe, 1)
        field = dotted(key)
        return f"{self.path}:{line}: {field}" if field else f"{self.path}:{line}"


def dotted(key: Key) -> str:
    """Render a key path as `suites.support-answer.thresholds[0]`."""
    out = ""
    for part in key:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' Did you mean X?' hint, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def parse_yaml(text: str, path: Path, error: type[Exception]) -> Located:
    """Parse YAML text; syntax errors and duplicate keys raise `error` naming the line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise error(
            f"{path}:{line}: not valid YAML: {exc.problem or exc}. Fix the syntax on that line "
            "(check indentation, colons and quotes)."
        ) from exc
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from exc
    except RecursionError:
        raise error(f"{path}: the YAML is nested too deeply; flatten it.") from None
    lines: dict[Key, int] = {}
    if node is None:
        return Located(path, None, lines)
    loader = yaml.SafeLoader("")
    try:
        data = _build(node, (), lines, loader, path, error, _Budget())
    except RecursionError:
        raise error(f"{path}: the YAML is nested too deeply; flatten it.") from None
    return Located(path, data, lines)


class _Budget:
    """Bounds on building a document: aliases can make a few hundred bytes expand to gigabytes."""

    MAX_NODES = 10_000_000
    MAX_REPEATED = 100_000  # nodes built a second time through an alias

    def __init__(self) -> None:
        self.nodes = self.repeated = 0
        self.seen: set[int] = set()
        self.open: set[int] = set()


def load_yaml(path: Path, what: str, error: type[Exception]) -> Located:
    """Read and parse a YAML file; a missing or unreadable file raises `error` saying which."""
    try:
        if path.exists() and not path.is_file():
            raise error(f"{path}: the {what} is not a regular file (a folder, device or pipe?). Fix the path.")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise error(f"{path}: {what} not found. Create it or fix the path.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read {what}: {exc}") from exc
    return parse_yaml(text, path, error)


def _build(
    node: yaml.Node, key: Key, lines: dict[Key, int], loader: yaml.SafeLoader, path: Path,
    error: type[Exception], budget: _Budget,
) -> Any:
    line = node.start_mark.line + 1
    lines.setdefault(key, line)
    ident = id(node)
    if ident in budget.open:
        raise error(f"{path}:{line}: this YAML alias refers to the value it is inside (a recursive structure); "
                    "write the value out instead.")
    budget.nodes += 1
    if ident in budget.seen:
        budget.repeated += 1
    budget.seen.add(ident)
    if budget.nodes > budget.MAX_NODES or budget.repeated > budget.MAX_REPEATED:
        raise error(f"{path}:{line}: the YAML expands to too many values (aliases repeating aliases?); write it "
                    "out plainly.")
    budget.open.add(ident)
    try:
        return _build_node(node, key, lines, loader, path, error, budget)
    finally:
        budget.open.discard(ident)


def _build_node(node: yaml.Node, key: Key, lines: dict[Key, int], loader: yaml.SafeLoader, path: Path,
                error: type[Exception], budget: _Budget) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        merged: list[Any] = []
        for k_node, v_node in node.value:
            if k_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: keys given here win over merged ones
                value = _build(v_node, key, lines, loader, path, error, budget)
                sources = value if isinstance(value, list) else [value]
                if not all(isinstance(source, dict) for source in sources):
                    raise error(f"{path}:{k_node.start_mark.line + 1}: '<<' merges a mapping (or a list of them) "
                                "into this one.")
                merged += sources
                continue
            k = _scalar(k_node, loader, path, error) if isinstance(k_node, yaml.ScalarNode) else None
            if not isinstance(k, (str, int, bool, float)) or k is None:
                raise error(f"{path}:{k_node.start_mark.line + 1}: mapping keys must be plain names.")
            if k in out:
                raise error(
                    f"{path}:{k_node.start_mark.line + 1}: {dotted(key + (k,))} is given twice; "
                    "keep one."
                )
            lines[key + (k,)] = k_node.start_mark.line + 1
            out[k] = _build(v_node, key + (k,), lines, loader, path, error, budget)
        for source in merged:
            for k, v in source.items():
                if k not in out:
                    out[k] = v
                    lines.setdefault(key + (k,), node.start_mark.line + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(n, key + (i,), lines, loader, path, error, budget) for i, n in enumerate(node.value)]
    return _scalar(node, loader, path, error)


def _scalar(node: yaml.Node, loader: yaml.SafeLoader, path: Path, error: type[Exception]) -> Any:
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise error(f"{path}:{node.start_mark.line + 1}: unsupported YAML value ({getattr(exc, 'problem', None) or exc}); "
                    "only plain YAML (text, numbers, true/false, lists, mappings) is allowed.") from None
    except (ValueError, OverflowError) as exc:  # e.g. a timestamp out of range
        raise error(f"{path}:{node.start_mark.line + 1}: unreadable YAML value ({exc}).") from None


class Reader:
    """Typed access to a YAML tree; every mistake raises `error` naming file, line and field."""

    def __init__(self, src: Located, error: type[Exception]) -> None:
        self.src = src
        self.base = src.path.parent
        self.error = error

    def fail(self, key: Key, message: str) -> Exception:
        return self.error(f"{self.src.where(key)}: {message}")

    def value(self, key: Key) -> Any:
        node: Any = self.src.data
        for part in key:
            node = node[part]
        return node

    def mapping(self, key: Key, allowed: set[str] | frozenset[str], required: tuple[str, ...] = ()) -> dict[str, Any]:
        node = self.value(key)
        if not isinstance(node, dict):
            raise self.fail(key, f"expected a mapping of {', '.join(sorted(allowed))}, got {_kind(node)}.")
        for name in node:
            if name not in allowed:
                raise self.fail(key + (name,), f"unknown key '{name}'.{did_you_mean(str(name), allowed)} "
                                f"Allowed here: {', '.join(sorted(allowed))}.")
        for name in required:
            if name not in node:
                raise self.fail(key, f"missing required key '{name}'.")
        return node

    def string(self, key: Key, choices: tuple[str, ...] = ()) -> str:
        node = self.value(key)
        if not isinstance(node, str) or not node.strip():
            raise self.fail(key, f"expected a non-empty string, got {_kind(node)}.")
        if choices and node not in choices:
            raise self.fail(key, f"'{node}' is not one of {', '.join(choices)}.{did_you_mean(node, choices)}")
        return node

    def number(self, key: Key, minimum: Decimal = Decimal(0), integer: bool = False,
               maximum: Decimal = MAX_NUMBER) -> Decimal:
        node = self.value(key)
        try:
            text = str(node).strip()
        except ValueError:  # an int of over 4,300 digits
            raise self.fail(key, "expected a number of sane size, got one of thousands of digits.") from None
        if isinstance(node, bool) or not isinstance(node, (int, float, str)) or len(text) > 60:
            raise self.fail(key, f"expected a number, got {_kind(node)}.")
        try:
            number = plain_number(text)
        except CommaError as exc:
            raise self.fail(key, f"{exc}.") from None
        except ValueError:
            raise self.fail(key, f"expected a number, got {_kind(node)}.") from None
        what = "a whole number" if integer else "a number"
        if not number.is_finite() or number < minimum or (integer and number != number.to_integral_value()):
            raise self.fail(key, f"expected {what} >= {minimum}, got {_kind(node)}.")
        if number > maximum:
            raise self.fail(key, f"expected {what} of at most {maximum:,}, got {_kind(node)}; a typo?")
        if number != 0 and number.adjusted() < -12:
            raise self.fail(key, f"expected {what} of at least 1e-12 (or 0), got {_kind(node)}; a typo?")
        return number

    def boolean(self, key: Key) -> bool:
        node = self.value(key)
        if not isinstance(node, bool):
            raise self.fail(key, f"expected true or false, got {_kind(node)}.")
        return node

    def path(self, key: Key, what: str) -> Path:
        try:
            path = (self.base / self.string(key)).resolve()
            found = path.is_file()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
            raise self.fail(key, f"{what} path cannot be resolved ({exc}). Fix the path.") from None
        if not found:
            raise self.fail(key, f"{what} '{path}' does not exist. Fix the path (relative to "
                            f"{self.base}) or create the file.")
        outside = outside_repository(path, self.base)
        if outside is not None:
            raise self.fail(key, outside)
        return path


ALLOW_OUTSIDE = "COSTGATE_ALLOW_OUTSIDE_PATHS"


@functools.lru_cache(maxsize=64)
def repository_root(folder: Path) -> Path | None:
    """The git work tree a folder is in (None outside one)."""
    try:
        done = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=folder, capture_output=True, text=True,
                              timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    top = done.stdout.strip()
    return Path(top).resolve() if done.returncode == 0 and top else None


def outside_repository(path: Path, folder: Path) -> str | None:
    """Why `path` (resolved, symlinks followed) may not be used: it lies outside the git repository the config is
    in, so a pull request could point a template or prompt set at /etc/passwd or a runner's secrets and have it
    rendered, sent and stored. None when it is inside, the config is in no repository, or the workflow opted out
    (COSTGATE_ALLOW_OUTSIDE_PATHS=1, set by the workflow: a pull request can't set it)."""
    if os.environ.get(ALLOW_OUTSIDE) == "1":
        return None
    root = repository_root(folder.resolve())
    if root is None:
        return None
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return (f"'{path}' resolves outside the repository ({root}); a config may only name files in its "
                f"repository. Move the file in, or set {ALLOW_OUTSIDE}=1 in the workflow's environment.")
    return None


def _kind(node: Any) -> str:
    if node is None:
        return "nothing"
    shown = {dict: "a mapping", list: "a list", str: f"'{node}'", bool: f"{node}".lower()}.get(type(node), repr(node))
    return shown if len(shown) <= 60 else shown[:59] + "…"
