"""pytest hooks only, in lifecycle order; the work happens in the pure modules they call."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .options import State, add_options, flag, read_state

STATE = pytest.StashKey[State]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "costgate: a cost-gate suite (select with -m costgate)")
    if not flag(config, "costgate"):
        return
    from .safety.redact import register_environment

    register_environment()
    state = read_state(config)
    config.stash[STATE] = state
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(Controller(state, config.option.tbstyle != "no"), "costgate-controller")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash.get(STATE, None)
    if state is not None:
        collector = CostgateFile.from_parent(session, path=state.config.path)
        suites = list(collector.collect())
        # Reported like any collected file, so "collected N items" and --co count the suites.
        session.ihook.pytest_collectreport(report=pytest.CollectReport(collector.nodeid, "passed", None, [*suites]))
        items.extend(suites)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    result = getattr(item, "costgate_result", None)
    if result is not None and call.when == "call":
        report = outcome.get_result()
        if hasattr(item.config, "workerinput"):  # execnet carries plain data only
            result = {k: (v.to_json() if hasattr(v, "to_json") else v) for k, v in result.items()}
        report.costgate = result


class CostgateFile(pytest.File):
    """The config file as a collector: one item per suite."""

    def collect(self) -> Iterator[pytest.Item]:
        state = self.config.stash[STATE]
        for suite in state.config.suites:
            shards: list[tuple[int, int] | None]
            if state.shard is not None:  # a CI matrix job runs its one shard of every suite
                shards = [state.shard]
            else:
                total = 1 if state.against else (state.shards or suite.shards)
                shards = [(k, total) for k in range(1, total + 1)] if total > 1 else [None]
            for shard in shards:
                name = suite.name if shard is None else f"{suite.name}[{shard[0]}/{shard[1]}]"
                item = SuiteItem.from_parent(self, name=name, suite=suite.name, shard=shard)
                item.add_marker("costgate")
                yield item


class SuiteFailed(Exception):
    """A suite breached a fail-level threshold; its text is the breach table."""


class SuiteItem(pytest.Item):
    """`costgate.yaml::suite-name`: replays the suite and fails on fail-level breaches. A shard item
    (`suite-name[2/8]`) measures its part only; the controller joins the parts and judges the suite once."""

    def __init__(self, *, suite: str, shard: tuple[int, int] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite, self.shard = suite, shard

    def runtest(self) -> None:
        from .safety.escape import safe_logging

        with safe_logging():
            self._run()

    def _run(self) -> None:
        from .gate.suite import run_suite
        from .report.terminal import breach_lines

        state = self.config.stash[STATE]
        spec = state.config.suite(self.suite)
        base_entry = None
        if state.against:
            from .gate.live import run_against

            entry, base_entry = run_against(state.config, spec, state.base_config, state.against,
                                            state.tokens_only, state.deadline)
        else:
            entry = run_suite(state.config, spec, state.baseline, state.tokens_only, state.deadline,
                              progress_for(self, self.name, state.tokens_only or spec.tokens_only), state.changed_only,
                              self.shard)
        # Results ride the report to the controller: as objects in this process, as plain data from an xdist
        # worker (see pytest_runtest_makereport). --junitxml gets only the status.
        self.costgate_result = {"name": self.suite, "entry": entry, "base": base_entry,
                                "shard": list(self.shard) if self.shard else None}
        self.user_properties.append(("costgate_status", "measured" if self.shard else entry.status))
        if self.shard is None and entry.status == "fail" and not state.update:
            raise SuiteFailed("\n".join(breach_lines(self.name, entry)))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        """The breach table or one clear error: never pytest's traceback with frame arguments of our internals."""
        from .safety.errors import CostgateError
        from .safety.escape import terminal_block

        error = excinfo.value
        if isinstance(error, SuiteFailed):
            return terminal_block(str(error))
        if isinstance(error, CostgateError):
            return terminal_block(f"costgate suite '{self.name}' ERROR: {error}")
        return terminal_block(internal_error(self.name, excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"costgate suite {self.name}"


def progress_for(item: pytest.Item, name: str, tokens_only: bool) -> Any:
    """A progress line for this suite on the terminal (not on xdist workers, whose output isn't shown; not with -q)."""
    config = item.config
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or hasattr(config, "workerinput") or config.get_verbosity() < 0:
        return None
    from .replay.progress import Progress
    from .safety.escape import terminal

    capture = config.pluginmanager.get_plugin("capturemanager")
    tty = reporter.isatty() if callable(getattr(reporter, "isatty", None)) else bool(getattr(reporter, "isatty", False))

    def write(text: str, final: bool) -> None:
        context = capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext()
        with context:
            if tty:
                reporter.rewrite(terminal(text), erase=True)
                if final:
                    reporter.write("\n")
            else:
                reporter.ensure_newline()
                reporter.write_line(terminal(text))

    if tty:
        reporter.ensure_newline()
    return Progress(name, write, tty, "prompts" if tokens_only else "requests")


def internal_error(name: str, excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    """An unexpected exception, shown as its type, message and where it happened; no argument or local values."""
    import traceback

    from .safety.redact import shorten

    frames = traceback.extract_tb(excinfo.tb)[-6:]
    where = [f"  {Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames]
    return "\n".join([f"costgate suite '{name}' ERROR: internal error {type(excinfo.value).__name__}: "
                      f"{shorten(excinfo.value, 300)}",
                      "This is a bug in pytest-costgate (or a plugin backend); please report it with these lines:",
                      *where])


class _Crash:
    def __init__(self, message: str) -> None:
        self.message = message


class SuiteFailure:
    """A suite's failure text for the FAILURES section and --junitxml, with one line (the driver: what breached
    and why) for pytest's short summary, which on CI would otherwise repeat the whole breach table."""

    def __init__(self, text: str, result: dict[str, Any] | None) -> None:
        self.text = text
        self.reprcrash = _Crash(self._headline(text, result))

    @staticmethod
    def _headline(text: str, result: dict[str, Any] | None) -> str:
        first = text.splitlines()[0] if text else ""
        if result is None or not first.endswith("FAIL:"):
            return first
        from .report.drivers import driver
        from .safety.errors import CostgateError
        from .safety.escape import terminal
        from .store.schema import suite_from

        entry = result["entry"]
        try:
            entry = entry if hasattr(entry, "verdict") else suite_from(entry, "results")
            why = driver(entry, plain=True)
        except CostgateError:
            why = None
        return terminal(f"{result['name']} FAIL: {why}") if why else first

    def toterminal(self, tw: Any) -> None:  # what pytest calls on a report's longrepr
        for line in self.text.splitlines():
            tw.line(line)

    def __str__(self) -> str:
        return self.text


class Controller:
    """Reporting hooks of the process that writes files: the only one without xdist, else the controller."""

    def __init__(self, state: State, failures_shown: bool = True) -> None:
        self.state = state
        self.failures_shown = failures_shown  # False under --tb=no: pytest then prints no failure text

    @pytest.hookimpl(tryfirst=True)  # before junitxml writes the failure
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        result = getattr(report, "costgate", None)
        if report.failed and isinstance(report.longrepr, str):
            report.longrepr = SuiteFailure(report.longrepr, result)  # type: ignore[assignment]  # pytest calls toterminal()
        if report.failed and self.failures_shown:  # pytest prints the breach table: the summary won't repeat it
            self.state.shown.add(result["name"] if result is not None else report.nodeid.rsplit("::", 1)[-1])
        if result is not None:
            from .safety.errors import CostgateError
            from .store.schema import suite_from

            where = f"results of {report.nodeid}"
            try:
                entry = suite_from(result["entry"], where)
                if result.get("shard"):
                    k, n = result["shard"]
                    self.state.parts.setdefault(result["name"], {})[k] = entry
                else:
                    self.state.suites[result["name"]] = entry
                if result.get("base") is not None:
                    self.state.live_base[result["name"]] = suite_from(result["base"], where)
            except CostgateError as exc:
                self.state.errors[result["name"]] = str(exc)
            return
        if report.failed and report.longrepr is not None:
            name = report.nodeid.rsplit("::", 1)[-1]
            self.state.errors[name] = str(report.longrepr)


    def _join_shards(self, session: pytest.Session) -> None:
        """Sharded suites, whole again and judged once: a failing one fails the session (its items only measured)."""
        from .gate.parts import join_and_judge
        from .safety.errors import CostgateError

        state = self.state
        for name, parts in state.parts.items():
            if state.shard is not None:  # a matrix job: its one part goes out as is, for `costgate merge`
                state.suites[name] = parts[state.shard[0]]
                continue
            spec = state.config.suite(name)
            total = state.shards or spec.shards
            try:
                entry = join_and_judge(state.config, spec, parts, total, state.baseline)
            except CostgateError as exc:
                state.errors[name] = f"costgate suite '{name}' ERROR: {exc}"
                continue
            state.suites[name] = entry
            if entry.status == "fail" and not state.update and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from .report.files import write_outputs
        from .store.document import Document

        state = self.state
        self._join_shards(session)
        if not state.suites and not state.errors:  # --collect-only, or -k / -m deselected every suite
            state.written = ["costgate: no suite ran; nothing was written"]
            return
        if state.against:
            state.baseline = Document(suites=dict(state.live_base), kind="baseline", git_sha=state.against)
        interrupted = session.exitstatus == pytest.ExitCode.INTERRUPTED or session.shouldstop
        update = state.update and not interrupted
        try:
            lines, ok = write_outputs(state.config, state.baseline, state.suites, update, state.report,
                                      state.markdown, state.template, state.benchmark, state.partial, state.shard)
            if state.update and interrupted:
                lines.append("costgate: the run was interrupted; the baseline was left as it was")
        except Exception as exc:  # noqa: BLE001 - whatever happens, the session must say so and not succeed
            from .safety.redact import shorten

            lines, ok = [f"costgate: ERROR: writing the outputs failed: {type(exc).__name__}: {shorten(exc, 300)}"], False
        state.written = lines
        if not ok and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a requested output that is missing is a failure

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        import os

        from .judge.summary import removed_suites
        from .report.terminal import summary_lines
        from .safety.escape import stop_commands, terminal

        terminalreporter.write_sep("=", "costgate")
        state = self.state
        ordered = {s.name: state.suites[s.name] for s in state.config.suites if s.name in state.suites}
        removed = tuple(removed_suites((s.name for s in state.config.suites), state.baseline))
        if not ordered and not state.errors:  # --collect-only, or -k / -m deselected every suite: no empty table
            lines = state.written
        else:
            lines = summary_lines(ordered, state.baseline, state.errors, state.config.baseline, removed,
                                  state.shown, state.update) + state.written
        # In a GitHub Actions log, untrusted text in these lines must not run as workflow commands: each
        # line is escaped, and the block is fenced with GitHub's stop-commands as well.
        fence = stop_commands() if os.environ.get("GITHUB_ACTIONS") == "true" else None
        if fence:
            terminalreporter.write_line(fence[0])
        for line in lines:
            terminalreporter.write_line(terminal(line))
        if fence:
            terminalreporter.write_line(fence[1])
