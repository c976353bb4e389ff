"""Incremental replay: ten suites with ten templates, one template edited. Counts the requests a loopback
OpenAI-compatible server receives with `replay: changed` and with a full replay (goal: <= 10% + 1 of the full
replay), and checks both give the same verdict on the token metrics.

Usage: python benchmarks/incremental.py [--prompts 40]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from openai_server import FakeOpenAI  # noqa: E402 - the loopback server the tests use

TOKEN_METRICS = ("input_tokens_mean", "input_tokens_total", "output_tokens_mean", "output_tokens_total",
                 "cost_per_request", "monthly_cost")


def gate(folder: Path, *args: str) -> dict:
    subprocess.run([sys.executable, "-m", "pytest", "--costgate", "--costgate-config", "costgate.yaml", "-q",
                    "-p", "no:cacheprovider", "--costgate-report", "r.json", *args], cwd=folder, capture_output=True,
                   check=False)
    return json.loads((folder / "r.json").read_text())


def token_verdict(report: dict) -> dict:
    return {name: (suite["verdict"]["status"], [(r["metric"], r["status"], r["delta"]) for r in suite["verdict"]["rows"]
                                                if r["metric"] in TOKEN_METRICS])
            for name, suite in report["suites"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=40, help="prompts per suite")
    args = parser.parse_args()
    server = FakeOpenAI()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            with open(folder / "prompts.jsonl", "w") as out:
                for i in range(args.prompts):
                    out.write(json.dumps({"id": f"p{i}", "vars": {"q": f"question {i} about an order"}}) + "\n")
            config = f"models:\n  m: {{backend: openai, base_url: \"{server.url}\", concurrency: 8, " \
                     "pricing: {input_per_1m: 1, output_per_1m: 2}}\nsuites:\n"
            for n in range(10):
                (folder / f"t{n}.j2").write_text(f"You answer for team {n}. Question: {{{{ q }}}}")
                config += f"  s{n}: {{model: m, prompts: prompts.jsonl, template: t{n}.j2, replay: changed, " \
                          "requests_per_month: 100000}\n"
            (folder / "costgate.yaml").write_text(config)
            gate(folder, "--costgate-update-baseline")
            (folder / "t3.j2").write_text("You answer for team 3, politely and with a summary first. Question: {{ q }}")
            server.requests.clear()
            incremental = gate(folder)
            sent_incremental = len(server.requests)
            (folder / "costgate.yaml").write_text(config.replace(", replay: changed", ""))
            server.requests.clear()
            full = gate(folder)
            sent_full = len(server.requests)
    finally:
        server.close()
    same = token_verdict(incremental) == token_verdict(full)
    print(f"10 suites x {args.prompts} prompts, template of one suite edited")
    print(f"requests sent, incremental replay: {sent_incremental}")
    print(f"requests sent, full replay:        {sent_full}")
    print(f"ratio: {sent_incremental / sent_full:.3f} (goal <= {0.1 + 1 / sent_full:.3f}, i.e. 10% + 1 request)")
    print(f"token-metric verdicts identical: {same}")


if __name__ == "__main__":
    main()
