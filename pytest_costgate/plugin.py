"""pytest hooks only, in lifecycle order; the work happens in the pure modules they call."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

if TYPE_CHECKING:
    from .config import Config

PROPERTY = "costgate_suite"
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


@dataclass
class State:
    config: Config
    baseline: dict[str, Any] | None
    tokens_only: bool
    update: bool
    report: Path | None
    markdown: Path | None = None
    template: Path | None = None
    benchmark: Path | None = None
    deadline: float | None = None
    against: str | None = None
    base_config: Any = None
    live_base: dict[str, dict[str, Any]] = field(default_factory=dict)
    suites: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)


STATE = pytest.StashKey[State]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("costgate", "cost-regression gate for LLM/ML inference")
    options = [
        ("--costgate", "costgate", "run the cost gate (ini: costgate = true)", True),
        ("--costgate-config", "costgate_config", "path of costgate.yaml (default: costgate.yaml in rootdir)", False),
        ("--costgate-baseline", "costgate_baseline", "baseline JSON path, overriding the config's 'baseline'", False),
        ("--costgate-update-baseline", "costgate_update_baseline", "write the baseline from this run", True),
        ("--costgate-tokens-only", "costgate_tokens_only", "no model calls: exact input tokens, output from baseline", True),
        ("--costgate-report", "costgate_report", "write the JSON report (costgate/1) to this path", False),
        ("--costgate-markdown", "costgate_markdown", "write the Markdown cost diff (the PR comment) to this path", False),
        ("--costgate-markdown-template", "costgate_markdown_template", "a Jinja2 template replacing the built-in comment", False),
        ("--costgate-benchmark-json", "costgate_benchmark_json", "write pytest-benchmark-compatible JSON to this path", False),
        ("--costgate-time-budget", "costgate_time_budget", "seconds the whole gate may replay for (then judge what was measured)", False),
        ("--costgate-against", "costgate_against", "replay this git ref's suites as the baseline, interleaved with the head (ABBA)", False),
    ]
    for flag, ini, text, boolean in options:
        if boolean:
            group.addoption(flag, action="store_true", default=None, dest=ini, help=text)
        else:
            group.addoption(flag, default=None, dest=ini, metavar="PATH", help=text)
        parser.addini(ini, f"{text} (same as {flag})", default="")


def _setting(config: pytest.Config, name: str) -> str | None:
    value = config.getoption(name)
    if value is not None:
        return "true" if value is True else str(value)
    return str(config.getini(name)).strip() or None


def _flag(config: pytest.Config, name: str) -> bool:
    value = (_setting(config, name) or "").lower()
    if value not in TRUE + FALSE:
        raise pytest.UsageError(f"ini option {name} = {value!r}: expected true or false.")
    return value in TRUE


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "costgate: a cost-gate suite (select with -m costgate)")
    if not _flag(config, "costgate"):
        return
    from .baseline import load_baseline
    from .config import load_config
    from .errors import CostgateError
    from .escape import terminal_block
    from .redact import register_environment

    register_environment()
    path = Path(_setting(config, "costgate_config") or config.rootpath / "costgate.yaml")
    if not path.is_absolute():
        path = (Path(config.invocation_params.dir) / path).resolve()
    update = _flag(config, "costgate_update_baseline")
    try:
        if not path.exists():
            raise CostgateError(f"{path}: no costgate config here. Pass --costgate-config PATH, set ini "
                                "costgate_config, or create costgate.yaml (see the README quickstart).")
        cg = load_config(path)
        override = _setting(config, "costgate_baseline")
        if override:
            cg = replace(cg, baseline=(Path(config.invocation_params.dir) / override).resolve())
        against = _setting(config, "costgate_against")
        base_cfg = None
        if against:
            if update:
                raise CostgateError("--costgate-against replays a live baseline; it can't be combined with "
                                    "--costgate-update-baseline.")
            from .live import base_config

            base_cfg = base_config(cg, against)
            baseline = None
        else:
            baseline = None if update and not cg.baseline.exists() else load_baseline(cg.baseline)
    except CostgateError as exc:
        raise pytest.UsageError(terminal_block(f"costgate: {exc}")) from None
    here = Path(config.invocation_params.dir)
    report, markdown, template = (_setting(config, name) for name in
                                  ("costgate_report", "costgate_markdown", "costgate_markdown_template"))
    benchmark = _setting(config, "costgate_benchmark_json")
    state = State(cg, baseline, _flag(config, "costgate_tokens_only"), update,
                  here / report if report else None, here / markdown if markdown else None,
                  here / template if template else None, here / benchmark if benchmark else None,
                  _deadline(_setting(config, "costgate_time_budget"), cg.time_budget_s))
    state.against, state.base_config = against, base_cfg
    config.stash[STATE] = state
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(Controller(state), "costgate-controller")


def _deadline(option: str | None, configured: Any) -> float | None:
    """The perf_counter time after which no suite starts another request."""
    import math
    import time

    if option is None and configured is None:
        return None
    try:
        seconds = float(option if option is not None else configured)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise pytest.UsageError(f"--costgate-time-budget {str(option)[:40]!r}: expected a positive number of seconds, "
                                "e.g. 600.")
    return time.perf_counter() + seconds


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash.get(STATE, None)
    if state is not None:
        items.extend(CostgateFile.from_parent(session, path=state.config.path).collect())


class CostgateFile(pytest.File):
    """The config file as a collector: one item per suite."""

    def collect(self) -> Iterator[pytest.Item]:
        state = self.config.stash[STATE]
        for suite in state.config.suites:
            item = SuiteItem.from_parent(self, name=suite.name)
            item.add_marker("costgate")
            yield item


class SuiteFailed(Exception):
    """A suite breached a fail-level threshold; its text is the breach table."""


class SuiteItem(pytest.Item):
    """`costgate.yaml::suite-name`: replays the suite and fails on fail-level breaches."""

    def runtest(self) -> None:
        from .gate import run_suite
        from .report.terminal import breach_lines

        state = self.config.stash[STATE]
        spec = state.config.suite(self.name)
        base_entry = None
        if state.against:
            from .live import run_against

            entry, base_entry = run_against(state.config, spec, state.base_config, state.against,
                                            state.tokens_only, state.deadline)
        else:
            entry = run_suite(state.config, spec, state.baseline, state.tokens_only, state.deadline)
        from .redact import redact_json_text

        # Results ride user_properties to the controller (and into --junitxml): redacted before they leave.
        payload = redact_json_text(json.dumps({"name": self.name, "entry": entry, "base": base_entry}))
        self.user_properties.append((PROPERTY, payload))
        if entry["verdict"]["status"] == "fail" and not state.update:
            raise SuiteFailed("\n".join(breach_lines(self.name, entry)))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """The breach table or one clear error: never pytest's traceback with frame arguments of our internals."""
        from .errors import CostgateError
        from .escape import terminal_block

        error = excinfo.value
        if isinstance(error, SuiteFailed):
            return terminal_block(str(error))
        if isinstance(error, CostgateError):
            return terminal_block(f"costgate suite '{self.name}' ERROR: {error}")
        return terminal_block(internal_error(self.name, excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"costgate suite {self.name}"


def internal_error(name: str, excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    """An unexpected exception, shown as its type, message and where it happened; no argument or local values."""
    import traceback

    from .redact import shorten

    frames = traceback.extract_tb(excinfo.tb)[-6:]
    where = [f"  {Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames]
    return "\n".join([f"costgate suite '{name}' ERROR: internal error {type(excinfo.value).__name__}: "
                       f"{shorten(excinfo.value, 300)}",
                       "This is a bug in pytest-costgate (or a plugin backend); please report it with these lines:",
                       *where])


class Controller:
    """Reporting hooks of the process that writes files: the only one without xdist, else the controller."""

    def __init__(self, state: State) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        # Results ride user_properties, so they reach the controller from xdist workers too.
        if report.when != "call":
            return
        for name, value in report.user_properties:
            if name == PROPERTY:
                data = json.loads(value)
                self.state.suites[data["name"]] = data["entry"]
                if data.get("base") is not None:
                    self.state.live_base[data["name"]] = data["base"]
                return
        if report.failed and report.longrepr is not None:
            self.state.errors[report.nodeid.rsplit("::", 1)[-1]] = str(report.longrepr)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from .report.files import write_outputs

        state = self.state
        if state.against:
            from . import SCHEMA

            state.baseline = {"schema": SCHEMA, "git_sha": state.against, "suites": state.live_base}
        state.written = write_outputs(state.config, state.baseline, state.suites, state.update, state.report,
                                      state.markdown, state.template, state.benchmark)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        import os

        from .baseline import removed_suites
        from .escape import stop_commands, terminal
        from .report.terminal import summary_lines

        terminalreporter.write_sep("=", "costgate")
        state = self.state
        ordered = {s.name: state.suites[s.name] for s in state.config.suites if s.name in state.suites}
        removed = tuple(removed_suites(state.config, state.baseline))
        lines = summary_lines(ordered, state.baseline, state.errors, state.config.baseline, removed) + state.written
        # In a GitHub Actions log, untrusted text in these lines must not run as workflow commands: each
        # line is escaped, and the block is fenced with GitHub's stop-commands as well.
        fence = stop_commands() if os.environ.get("GITHUB_ACTIONS") == "true" else None
        if fence:
            terminalreporter.write_line(fence[0])
        for line in lines:
            terminalreporter.write_line(terminal(line))
        if fence:
            terminalreporter.write_line(fence[1])
