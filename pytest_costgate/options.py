"""Command-line options and their ini twins, read once into the run's State (kept in config.stash)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .config.specs import Config
    from .store.document import Document, SuiteEntry

# flag, ini name, metavar (None: a boolean switch), help
OPTIONS = [
    ("--costgate", "costgate", None, "run the cost gate (ini: costgate = true)"),
    ("--costgate-config", "costgate_config", "PATH", "path of costgate.yaml (default: costgate.yaml in rootdir)"),
    ("--costgate-baseline", "costgate_baseline", "PATH", "baseline JSON path, overriding the config's 'baseline'"),
    ("--costgate-update-baseline", "costgate_update_baseline", None, "write the baseline from this run"),
    ("--costgate-update-partial", "costgate_update_partial", None,
     "with --costgate-update-baseline: keep the old records of prompts this run missed (time budget, failures) "
     "instead of leaving the suite's entry as it was"),
    ("--costgate-tokens-only", "costgate_tokens_only", None, "no model calls: exact input tokens, output from baseline"),
    ("--costgate-changed-only", "costgate_changed_only", None,
     "replay only prompts whose request changed since the baseline; reuse the rest for tokens and cost"),
    ("--costgate-report", "costgate_report", "PATH", "write the JSON report (costgate/1) to this path"),
    ("--costgate-markdown", "costgate_markdown", "PATH", "write the Markdown cost diff (the PR comment) to this path"),
    ("--costgate-markdown-template", "costgate_markdown_template", "PATH",
     "a Jinja2 template replacing the built-in comment"),
    ("--costgate-benchmark-json", "costgate_benchmark_json", "PATH", "write pytest-benchmark-compatible JSON to this path"),
    ("--costgate-time-budget", "costgate_time_budget", "SECONDS",
     "seconds the whole gate may replay for (then judge what was measured)"),
    ("--costgate-shards", "costgate_shards", "N",
     "split every suite's prompts into N items for pytest-xdist workers (overrides 'shards' in the config)"),
    ("--costgate-shard", "costgate_shard", "K/N",
     "run shard K of N of every suite (a CI matrix job) and write a partial report for 'costgate merge'"),
    ("--costgate-against", "costgate_against", "REF",
     "replay this git ref's suites as the baseline, interleaved with the head (ABBA)"),
]


@dataclass
class State:
    """Everything a run needs, read once from options, ini and the config."""

    config: Config
    baseline: Document | None
    tokens_only: bool
    update: bool
    report: Path | None = None
    markdown: Path | None = None
    template: Path | None = None
    benchmark: Path | None = None
    deadline: float | None = None
    against: str | None = None
    base_config: Any = None
    partial: bool = False
    changed_only: bool = False
    shards: int | None = None  # --costgate-shards: every suite split into this many items
    shard: tuple[int, int] | None = None  # --costgate-shard K/N: this matrix job's part
    parts: dict[str, dict[int, SuiteEntry]] = field(default_factory=dict)  # shard entries waiting to be joined
    live_base: dict[str, SuiteEntry] = field(default_factory=dict)
    suites: dict[str, SuiteEntry] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    shown: set[str] = field(default_factory=set)  # suites whose failure pytest printed (not repeated below)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("costgate", "cost-regression gate for LLM/ML inference")
    for flag, ini, metavar, text in OPTIONS:
        if metavar is None:
            group.addoption(flag, action="store_true", default=None, dest=ini, help=text)
            parser.addini(ini, f"{text} (same as {flag})", type="bool", default=False)
        else:
            group.addoption(flag, default=None, dest=ini, metavar=metavar, help=text)
            parser.addini(ini, f"{text} (same as {flag})", default="")


def setting(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(name)
    if value is not None:
        return str(value)
    return str(config.getini(name)).strip() or None


def usage(message: str) -> pytest.UsageError:
    """A usage error whose text (which may quote a value from a file a pull request changed) is safe to print."""
    from .safety.escape import terminal_block

    return pytest.UsageError(terminal_block(message))


def flag(config: pytest.Config, name: str) -> bool:
    if config.getoption(name):
        return True
    try:
        value = config.getini(name)
    except ValueError as exc:
        raise usage(f"ini option {name}: expected true or false ({exc}).") from None
    if isinstance(value, str):  # an ini value pytest did not convert (older pytest)
        text = value.strip().lower()
        if text not in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
            raise usage(f"ini option {name} = {value[:40]!r}: expected true or false.")
        return text in ("1", "true", "yes", "on")
    return bool(value)


def read_state(config: pytest.Config) -> State:
    """Load the config and baseline and check every option; a mistake is a UsageError naming it."""
    from .config.loader import load_config
    from .safety.errors import CostgateError
    from .safety.redact import shorten
    from .store.schema import read_document

    here = Path(config.invocation_params.dir)
    path = Path(setting(config, "costgate_config") or config.rootpath / "costgate.yaml")
    path = path if path.is_absolute() else (here / path).resolve()
    update = flag(config, "costgate_update_baseline")
    try:
        if not path.exists():
            raise CostgateError(f"{path}: no costgate config here. Pass --costgate-config PATH, set ini "
                                "costgate_config, or create costgate.yaml (see the README quickstart).")
        cg = load_config(path)
        override = setting(config, "costgate_baseline")
        if override:
            cg = replace(cg, baseline=(here / override).resolve())
            if not update and not cg.baseline.exists():
                raise CostgateError(f"--costgate-baseline {override}: no such file ({cg.baseline}). Fix the path, "
                                    "or create the baseline with --costgate-update-baseline.")
        against = setting(config, "costgate_against")
        base_cfg = None
        baseline = None
        if against:
            if update:
                raise CostgateError("--costgate-against replays a live baseline; it can't be combined with "
                                    "--costgate-update-baseline.")
            from .gate.live import base_config

            base_cfg = base_config(cg, against)
        elif not (update and not cg.baseline.exists()):
            baseline = read_document(cg.baseline)
        template = _path(here, setting(config, "costgate_markdown_template"))
        if template is not None and not template.is_file():
            raise CostgateError(f"--costgate-markdown-template {template}: no such file. Fix the path or leave the "
                                "option out to use the built-in comment.")
    except CostgateError as exc:
        raise usage(f"costgate: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - never an INTERNALERROR (whose locals would show config values)
        raise usage(f"costgate: internal error while reading {path}: {type(exc).__name__}: {shorten(exc, 300)}. "
                    "This is a bug in pytest-costgate; please report it.") from None
    tokens_only = flag(config, "costgate_tokens_only")
    if tokens_only and update:
        raise usage("costgate: --costgate-tokens-only calls no model, so it has no outputs, timings or output tokens "
                    "to store; update the baseline with a replay (suites with tokens_only: true in the config are "
                    "stored as they are).")
    partial = flag(config, "costgate_update_partial")
    if partial and not update:
        raise usage("costgate: --costgate-update-partial only applies with --costgate-update-baseline.")
    shards, shard = _shards(config), None
    if setting(config, "costgate_shard"):
        from .replay.shards import parse_shard

        try:
            shard = parse_shard(setting(config, "costgate_shard") or "")
        except CostgateError as exc:
            raise usage(f"costgate: {exc}") from None
        if update:
            raise usage("costgate: --costgate-shard writes a partial report, which never updates a baseline; update "
                        "it from a full run (or merge the parts, then run the gate once with the update).")
        if not setting(config, "costgate_report"):
            raise usage("costgate: --costgate-shard needs --costgate-report PATH: the part is merged later with "
                        "costgate merge.")
        if against:
            raise usage("costgate: --costgate-shard can't be combined with --costgate-against.")
    return State(
        cg, baseline, tokens_only, update,
        report=_path(here, setting(config, "costgate_report")), markdown=_path(here, setting(config, "costgate_markdown")),
        template=template, benchmark=_path(here, setting(config, "costgate_benchmark_json")),
        deadline=deadline(setting(config, "costgate_time_budget"), cg.time_budget_s),
        against=against, base_config=base_cfg, partial=partial, changed_only=flag(config, "costgate_changed_only"),
        shards=shards, shard=shard)


def _shards(config: pytest.Config) -> int | None:
    value = setting(config, "costgate_shards")
    if value is None:
        return None
    if not value.isdigit() or not 1 <= int(value) <= 1024:
        raise usage(f"--costgate-shards {value[:20]!r}: expected a whole number from 1 to 1024.")
    return int(value)


def _path(here: Path, value: str | None) -> Path | None:
    return None if not value else here / value


def deadline(option: str | None, configured: Any) -> float | None:
    """The time (on the budget clock, safety.deadlines.budget_now) after which no suite starts another request."""
    if option is None and configured is None:
        return None
    try:
        seconds = float(option if option is not None else configured)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise usage(f"--costgate-time-budget {str(option)[:40]!r}: expected a positive number of seconds, e.g. 600.")
    from .safety.deadlines import budget_now

    return budget_now() + seconds
