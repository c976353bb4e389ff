"""`costgate` command: check a config without running models, show a JSON report as a table."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import CostgateError


def _validate(args: argparse.Namespace) -> int:
    from .config import load_config
    from .gate import count_inputs
    from .prompts import load_prompt_set
    from .render import PromptRenderer
    from .tokens import load_counter

    config = load_config(Path(args.config))
    for suite in config.suites:
        prompts = load_prompt_set(suite.prompts)
        renderer = PromptRenderer(suite.template)
        counts = count_inputs(load_counter(suite.model.tokenizer), [renderer.render(r) for r in prompts.records])
        print(f"{suite.name}: {len(counts)} prompts render, {sum(counts)} input tokens "
              f"(template {renderer.hash or 'none'}, model {suite.model.name} via {suite.model.backend})")
    print(f"{config.path}: OK")
    return 0


def _show(args: argparse.Namespace) -> int:
    from .baseline import load_baseline
    from .report.terminal import summary_lines

    report = load_baseline(Path(args.report))
    if report is None:
        raise CostgateError(f"{args.report}: no such report file.")
    base = load_baseline(Path(args.baseline)) if args.baseline else None
    for line in summary_lines(report["suites"], base, {}, args.baseline):
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `costgate` console script."""
    parser = argparse.ArgumentParser(prog="costgate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("validate", help="load the config, prompt sets, templates and tokenizers; count input tokens")
    check.add_argument("config", nargs="?", default="costgate.yaml")
    check.set_defaults(run=_validate)
    show = sub.add_parser("show", help="print a JSON report (costgate/1) as the terminal table")
    show.add_argument("report")
    show.add_argument("--baseline", help="baseline JSON to show the monthly change against")
    show.set_defaults(run=_show)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except CostgateError as exc:
        print(f"costgate: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, json.JSONDecodeError) as exc:
        print(f"costgate: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
