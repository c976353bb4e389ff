"""`costgate` command: check a config without running models, show a JSON report as a table."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .safety.errors import CostgateError
from .safety.escape import command_safe
from .store.document import Document


def _validate(args: argparse.Namespace) -> int:
    from .config.loader import load_config
    from .gate.suite import prepare

    config = load_config(Path(args.config))
    for suite in config.suites:
        prep = prepare(suite)
        _say(f"{suite.name}: {len(prep.counts)} prompts render, {sum(prep.counts)} input tokens "
             f"(template {prep.renderer.hash or 'none'}, model {suite.model.name} via {suite.model.backend})")
    _say(f"{config.path}: OK")
    return 0


def _show(args: argparse.Namespace) -> int:
    from .report.terminal import summary_lines

    report = _load_document(args.report, "report or baseline")
    base = _load_document(args.baseline, "baseline") if args.baseline else None
    for line in summary_lines(report.suites, base, {}, args.baseline):
        _say_line(line)
    return 0


def _load_document(path: str, what: str = "report") -> Document:
    from .store.schema import read_document

    doc = read_document(Path(path), "report" if what.startswith("report") else "baseline")
    if doc is None:
        raise CostgateError(f"{path}: no such file. Write a report with pytest --costgate --costgate-report {path}.")
    return doc


def _load_report(path: str) -> Document:
    """A judged report; a baseline (measured, never judged) is refused with what to pass instead."""
    doc = _load_document(path)
    if doc.kind != "report":
        raise CostgateError(f"{path} is a baseline (suites measured, not judged against anything). Pass the JSON "
                            "report written by pytest --costgate --costgate-report PATH, or compare two files with "
                            f"costgate diff {path} HEAD.json.")
    return doc


def _emit(body: str, output: str | None) -> None:
    if output:
        from .store.write import write_text_atomic

        write_text_atomic(Path(output), body)
    else:
        print(command_safe(body))


def _diff(args: argparse.Namespace) -> int:
    from .gate.diff import diff_reports
    from .report.markdown import render_markdown

    report = diff_reports(_load_document(args.base, "baseline"), _load_document(args.head), args.base)
    _emit(render_markdown(report, Path(args.template) if args.template else None), args.output)
    return 0


def _comment(args: argparse.Namespace) -> int:
    import os

    from .hosting.github import post, target_from_env
    from .report.markdown import marker, render_gate_error, render_markdown
    from .safety.errors import GitHubError
    from .safety.redact import register, register_environment

    register_environment()
    register(os.environ.get(args.token_env))
    _register_config_secrets(Path(args.config) if args.config else Path("costgate.yaml"))
    if args.gate_error is not None:
        try:
            log = Path(args.gate_error).read_text(encoding="utf-8", errors="replace")[-200_000:]
        except OSError:
            log = ""
        gate = args.comment_id
        body = render_gate_error(log, gate)
    elif args.report is None:
        raise CostgateError("costgate comment needs a report (or --gate-error LOG when the gate could not run).")
    else:
        report = _load_report(args.report)
        gate = args.comment_id or report.config
        body = render_markdown(report, Path(args.template) if args.template else None, gate=gate)
    if args.output:
        _emit(body, args.output)
    if not (args.post or os.environ.get("GITHUB_ACTIONS") == "true") or args.behavior == "off":
        if not args.output:
            print(command_safe(body))
        return 0
    token = os.environ.get(args.token_env)
    try:
        if not token:
            raise GitHubError(f"no token: the environment variable {args.token_env} is empty. In a workflow pass "
                              "github-token (secrets.GITHUB_TOKEN) with 'pull-requests: write'.")
        posted = post(body, target_from_env(args.pr, args.repo), token, args.behavior, marker(gate),
                      author=args.comment_author)
    except GitHubError as exc:
        _say(f"costgate: warning: the PR comment was not posted: {exc}", err=True)
        return 1 if args.strict else 0
    for warning in posted.warnings:
        _say(f"costgate: warning: {warning}", err=True)
    if posted.action == "fallback":
        _say(f"costgate: notice: {posted.note}", err=True)
    else:
        _say(f"costgate: comment {posted.action}" + (f": {posted.url}" if posted.url else ""))
    return 0


def _register_config_secrets(path: Path) -> None:
    """Make the secrets a config names known to the redaction point before anything is rendered: the values of
    the environment variables its `*_env` options name, URL userinfo, secret-looking header values. The config is
    loaded as the gate loads it; one that does not load (the gate-error path: maybe that is the error) is read as
    plain YAML, and every such value found is registered all the same."""
    import os

    from .config.loader import load_config
    from .safety.redact import register, register_headers, register_url

    if not path.is_file():
        return
    try:
        load_config(path)  # registers as it validates
        return
    except Exception:  # noqa: BLE001 - a broken config: fall back to reading what it names
        pass
    try:
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8", errors="replace"))
    except Exception:  # noqa: BLE001 - not even YAML: nothing more to learn from it
        return

    def walk(node: object, depth: int = 0) -> None:
        if depth > 30:
            return
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and key.endswith("_env") and isinstance(value, str):
                    register(os.environ.get(value))
                if key == "headers":
                    register_headers(value)
                walk(value, depth + 1)
        elif isinstance(node, list):
            for item in node:
                walk(item, depth + 1)
        elif isinstance(node, str) and "://" in node:
            register_url(node)

    walk(data)


def _say_line(text: str) -> None:
    """Print one line of a table: a line feed in it (a suite name in a hostile report) is shown as \\n, so it
    can't start a forged row."""
    from .safety.escape import terminal

    print(terminal(text))


def _say(text: str, err: bool = False) -> None:
    """Print one message line: redacted, escaped, never a workflow command."""
    from .safety.escape import terminal_block

    print(terminal_block(text), file=sys.stderr if err else sys.stdout)


def _merge(args: argparse.Namespace) -> int:
    from .gate.merge import merge_parts
    from .report.terminal import summary_lines

    merged = merge_parts([Path(p) for p in args.parts], Path(args.output), Path(args.config) if args.config else None,
                         Path(args.baseline) if args.baseline else None)
    for line in summary_lines(merged.report.suites, merged.baseline, {}, merged.baseline_path, merged.removed):
        _say_line(line)
    _say(f"costgate: merged {merged.parts} parts into {Path(args.output)}")
    summary = merged.report.summary
    return 1 if summary is not None and summary.status == "fail" else 0


def _prices(args: argparse.Namespace) -> int:
    """`costgate prices check`: hand-typed prices next to genai-prices' for the same models."""
    import datetime as dt

    from .config.loader import load_config
    from .config.prices import check_against_source, parse_when

    config = load_config(Path(args.config))
    when = parse_when(args.at) if args.at else dt.datetime.now(dt.timezone.utc)
    differ = 0
    for name, model in config.models.items():
        status, lines = check_against_source(model, when)
        differ += status == "differs"
        _say(f"{name}: {status}")
        for line in lines:
            _say(f"  {line}")
    _say(f"costgate: {differ} model(s) priced differently from genai-prices" if differ else
         "costgate: no hand-typed price differs from genai-prices")
    return 1 if differ else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `costgate` console script."""
    from .store.stamp import VERSION as __version__

    parser = argparse.ArgumentParser(prog="costgate", description=__doc__)
    parser.add_argument("--version", action="version", version=f"costgate {__version__} (pytest-costgate)")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("validate", help="load the config, prompt sets, templates and tokenizers; count input tokens")
    check.add_argument("config", nargs="?", default="costgate.yaml")
    check.set_defaults(run=_validate)
    show = sub.add_parser("show", help="print a JSON report (costgate/1) as the terminal table")
    show.add_argument("report")
    show.add_argument("--baseline", help="baseline JSON to show the monthly change against")
    show.set_defaults(run=_show)
    diff = sub.add_parser("diff", help="render the Markdown cost diff of two reports (base, head)")
    diff.add_argument("base")
    diff.add_argument("head")
    diff.add_argument("-o", "--output", help="write the Markdown here instead of stdout")
    diff.add_argument("--template", help="a Jinja2 template replacing the built-in one")
    diff.set_defaults(run=_diff)
    merge = sub.add_parser("merge", help="join the partial reports of a CI matrix (--costgate-shard K/N), judge them "
                                         "against the baseline, write the report; exit 1 when the gate fails")
    merge.add_argument("parts", nargs="+", help="the partial reports, one per shard")
    merge.add_argument("-o", "--output", required=True, help="where to write the merged report")
    merge.add_argument("--config", help="costgate.yaml (default: the path the parts name)")
    merge.add_argument("--baseline", help="baseline JSON (default: the config's 'baseline')")
    merge.set_defaults(run=_merge)
    prices = sub.add_parser("prices", help="compare hand-typed prices with a maintained source")
    prices_sub = prices.add_subparsers(dest="action", required=True)
    prices_check = prices_sub.add_parser("check", help="list models whose hand-typed prices differ from genai-prices "
                                                       "(exit 1 when one does)")
    prices_check.add_argument("config", nargs="?", default="costgate.yaml")
    prices_check.add_argument("--at", help="the date to read genai-prices at (default: today)")
    prices_check.set_defaults(run=_prices)
    comment = sub.add_parser("comment", help="render a report as the PR comment; post it in GitHub Actions or with --post")
    comment.add_argument("report", nargs="?")
    comment.add_argument("--gate-error", metavar="LOG", help="post that the gate could not run, with the first error "
                                                             "line of this log (when there is no report)")
    comment.add_argument("-o", "--output", help="also write the Markdown here")
    comment.add_argument("--template", help="a Jinja2 template replacing the built-in one")
    comment.add_argument("--post", action="store_true", help="post even outside GitHub Actions")
    comment.add_argument("--behavior", default="update", choices=("update", "new", "delete-and-new", "hide-and-new", "off"))
    comment.add_argument("--pr", type=int, help="pull request number (default: from GITHUB_EVENT_PATH)")
    comment.add_argument("--repo", help="owner/name (default: GITHUB_REPOSITORY)")
    comment.add_argument("--token-env", default="GITHUB_TOKEN", help="environment variable holding the token")
    comment.add_argument("--strict", action="store_true", help="exit 1 when posting fails (default: warn, exit 0)")
    comment.add_argument("--comment-id", help="gate id in the hidden marker, so two gates keep two comments "
                                              "(default: the report's config path)")
    comment.add_argument("--config", help="costgate.yaml whose secrets (api_key_env, URL passwords, headers) are "
                                           "redacted from the comment (default: costgate.yaml when present)")
    comment.add_argument("--comment-author", help="login whose comment is updated (default: the token's login, or "
                                                  "github-actions[bot] for the Actions token)")
    comment.set_defaults(run=_comment)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except CostgateError as exc:
        _say(f"costgate: error: {exc}", err=True)
        return 2
    except (OSError, json.JSONDecodeError) as exc:
        _say(f"costgate: error: {exc}", err=True)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
