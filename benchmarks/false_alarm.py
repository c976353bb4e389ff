"""Trust: false-alarm rate (A/A) and detection rate (A/B, +10% per-token delay) of the latency gate.

Replays the tiny ONNX fixture on this machine's CPU many times through costgate's own replay and
verdict code, with a latency_p50 fail threshold of +5% and costgate's default statistics (95%
bootstrap interval over prompts, 1 repeat). Two baseline modes side by side:
  live    base and head replayed in the same job, each prompt base-head-head-base (--costgate-against)
  stored  a baseline measured once at the start, each head measured later (a committed baseline)
Goals: false alarms <= 1%, detection >= 95%.
Usage: python benchmarks/false_alarm.py [--trials 100] [--prompts 24] [--max-new 32]
"""
from __future__ import annotations

import argparse
import time
from decimal import Decimal
from pathlib import Path

from pytest_costgate.backends import Completion, Request
from pytest_costgate.backends.onnx import OnnxBackend
from pytest_costgate.config import MetricRule, ModelSpec, TokenizerSpec
from pytest_costgate.gate import compare_suite
from pytest_costgate.measure import PromptResult, replay, replay_interleaved
from pytest_costgate.thresholds import parse_threshold
from pytest_costgate.tokens import load_counter

MODEL = Path(__file__).parent.parent / "fixtures" / "onnx" / "llama-tiny"
RULES = {"latency_p50": MetricRule(fail=parse_threshold("latency_p50", "+5%"))}


class Slower:
    """The same model with each request made `extra` (0.10 = 10%) slower: a per-token delay."""

    def __init__(self, inner: OnnxBackend, extra: float) -> None:
        self.inner, self.extra, self.batch_size = inner, extra, 1

    def complete(self, request: Request) -> Completion:
        start = time.perf_counter()
        done = self.inner.complete(request)
        took = time.perf_counter() - start
        until = time.perf_counter() + took * self.extra
        while time.perf_counter() < until:  # busy-wait: sleep() is too coarse for sub-millisecond delays
            pass
        elapsed = (time.perf_counter() - start) * 1000
        return Completion(text=done.text, input_tokens=done.input_tokens, output_tokens=done.output_tokens,
                          token_source=done.token_source, ttft_ms=done.ttft_ms, e2e_ms=elapsed)

    def fingerprint(self) -> dict[str, str]:
        return self.inner.fingerprint()

    def close(self) -> None:
        pass


def entry(results: list[PromptResult]) -> dict:
    prompts = {r.id: r.to_json() for r in results}
    return {"prompts": prompts, "template_hash": "t", "pricing": None, "fingerprint": {"same": "env"},
            "requests_per_month": None, "unmeasured": []}


def verdict(base: dict, head: dict) -> str:
    from pytest_costgate.gate import parse_results

    base_results = parse_results(base, "base", "s")
    head_results = list(parse_results(head, "head", "s").values())
    rows = compare_suite(base, base_results, head_results, head, RULES, [], []).rows
    return next(r.status for r in rows if r.metric == "latency_p50")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--max-new", type=int, default=32)
    args = parser.parse_args()
    spec = ModelSpec("tiny", "onnx", {"path": str(MODEL), "provider": "cpu", "threads": 1},
                     TokenizerSpec(tokenizer_json=MODEL / "tokenizer.json"), None, "benchmark", Path("."))
    model = OnnxBackend(spec)
    counter = load_counter(TokenizerSpec(tokenizer_json=MODEL / "tokenizer.json"))
    words = "refund order invoice shipping account password router update settings plan export".split()
    requests = [(Request(f"p{i}", " ".join(words[: 3 + i % 9]) + f" #{i}", {"max_new_tokens": args.max_new}),
                 1, Decimal(1)) for i in range(args.prompts)]
    same, slower = Slower(model, 0.0), Slower(model, 0.10)

    def measure(backend) -> dict:
        return entry(replay(backend, requests, counter, None, warmup=2)[0])

    stored_base = measure(same)
    counts = {(mode, kind): {"fail": 0, "inconclusive": 0, "pass": 0} for mode in ("live", "stored")
              for kind in ("A/A", "A/B")}
    started = time.perf_counter()
    for _ in range(args.trials):
        for kind, head_backend in (("A/A", same), ("A/B", slower)):
            pairs = [(r, r, 1, 1, w) for r, _, w in requests]
            base_live, head_live = replay_interleaved(same, head_backend, pairs, (counter, counter), (None, None), warmup=2)
            counts["live", kind][verdict(entry(base_live), entry(head_live))] += 1
            counts["stored", kind][verdict(stored_base, measure(head_backend))] += 1
    print(f"{args.trials} trials per cell, {args.prompts} prompts x {args.max_new} new tokens, llama-tiny on "
          f"CPU ({model.fingerprint()['device']}), latency_p50 fail at +5%, 95% bootstrap; "
          f"{time.perf_counter() - started:.0f} s")
    print(f"{'mode':8} {'false alarms (A/A fail)':>24} {'detection (A/B fail)':>22} {'A/B inconclusive':>18}")
    for mode in ("live", "stored"):
        aa, ab = counts[mode, "A/A"], counts[mode, "A/B"]
        print(f"{mode:8} {aa['fail'] / args.trials:>23.1%} {ab['fail'] / args.trials:>21.1%} "
              f"{ab['inconclusive'] / args.trials:>17.1%}")
    print("goals: false alarms <= 1%, detection >= 95%")


if __name__ == "__main__":
    main()
