"""Trust: false-alarm rate (A/A) and detection rate (A/B, +10% per-token delay) of the latency gate.

Replays the tiny ONNX fixture on this machine's CPU many times through costgate's own replay and verdict
code, with a latency_p50 fail threshold of +5% and costgate's statistics (95% bootstrap over prompts).
Columns, all on the same workload:
  live          base and head replayed in the same job, each prompt base-head-head-base (--costgate-against)
  stored        a baseline measured once, before the first window, judged against heads measured later
                (a committed baseline), without calibration
  stored+calib  the same measurements judged with machine-speed calibration (the probe timed between
                requests on both sides; head latencies divided by the speed factor, its uncertainty carried)
  pytest-bench  pytest-benchmark's own --benchmark-compare-fail=median:5% check (PercentageRegressionCheck on
                its Stats), its baseline saved at the same time as the stored one, 5 rounds of the prompt set
Windows are separated by a pause, so the machine's state changes between them as between CI runs.
Rates come with Wilson 95% intervals. Goals: stored+calib false alarms <= 1% and detection >= 90% in every
window; live <= 1% / >= 95%.
Usage: python benchmarks/false_alarm.py [--trials 100] [--windows 3] [--pause 60] [--prompts 24] [--max-new 32]
"""
from __future__ import annotations

import argparse
import json
import math
import time
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

from pytest_benchmark.stats import Stats
from pytest_benchmark.utils import PercentageRegressionCheck

from pytest_costgate.config.loader import MetricRule
from pytest_costgate.config.specs import ModelSpec, TokenizerSpec
from pytest_costgate.config.thresholds import parse_threshold
from pytest_costgate.inputs.tokens import load_counter
from pytest_costgate.judge.compare import compare_suite
from pytest_costgate.replay.backends import Completion, Request
from pytest_costgate.replay.backends.onnx import OnnxBackend
from pytest_costgate.replay.measure import replay, replay_interleaved
from pytest_costgate.replay.probe import WORKLOAD, Probe
from pytest_costgate.store.document import Calibration, Metrics, SuiteEntry
from pytest_costgate.store.records import PromptResult

MODEL = Path(__file__).parent.parent / "fixtures" / "onnx" / "llama-tiny"
RULES = {"latency_p50": MetricRule(fail=parse_threshold("latency_p50", "+5%"))}
MAX_FACTOR = Decimal("1.25")  # the default calibration bound
BENCH_ROUNDS = 5


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


def entry(results: list[PromptResult], probes: list[float] | None = None) -> SuiteEntry:
    return SuiteEntry(model="tiny", backend="onnx", mode="replay", template_hash="t", prompt_set={}, tokenizer="t",
                      pricing=None, requests_per_month=None, fingerprint={"same": "env"}, metrics=Metrics(),
                      prompts=MappingProxyType({r.id: r for r in results}),
                      calibration=Calibration(WORKLOAD, tuple(probes)) if probes else None)


def verdict(base: SuiteEntry, head: SuiteEntry, calibrated: bool) -> str:
    if not calibrated:
        base, head = (SuiteEntry(**{**vars(e), "calibration": None}) for e in (base, head))
    rows = compare_suite(base, list(head.prompts.values()), head, RULES, [], [], None,
                         MAX_FACTOR if calibrated else None).rows
    return next(r.status for r in rows if r.metric == "latency_p50")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(k: int, n: int) -> str:
    low, high = wilson(k, n)
    return f"{k / n:6.1%} [{low:.1%}-{high:.1%}]"


def from_dump(line: dict) -> SuiteEntry:
    results = [PromptResult(f"p{i}", Decimal(1), 1, input_tokens=1, output_tokens=1, e2e_ms=v)
               for i, v in enumerate(line["e2e"])]
    return entry(results, line["probe"])


def rejudge(path: Path) -> None:
    lines = [json.loads(text) for text in path.read_text().splitlines()]
    base = from_dump(lines[0])
    counts: dict[tuple[int, str, str], list[str]] = {}
    for line in lines[1:]:
        head = from_dump(line)
        for column, calibrated in (("stored", False), ("stored+calib", True)):
            counts.setdefault((line["window"], column, line["kind"]), []).append(verdict(base, head, calibrated))
    print(f"stored columns judged again from {path} ({len(lines) - 1} measurements)")
    for window in sorted({w for w, _, _ in counts}):
        print(f"window {window}: {'column':12} {'false alarms (A/A fail)':>26} {'detection (A/B fail)':>26} "
              f"{'A/A inconclusive':>17} {'A/B inconclusive':>17} {'A/B pass':>9}")
        for column in ("stored", "stored+calib"):
            aa, ab = counts[window, column, "A/A"], counts[window, column, "A/B"]
            print(f"{'':10}{column:12} {rate(aa.count('fail'), len(aa)):>26} {rate(ab.count('fail'), len(ab)):>26} "
                  f"{aa.count('inconclusive') / len(aa):>16.1%} {ab.count('inconclusive') / len(ab):>16.1%} "
                  f"{ab.count('pass') / len(ab):>8.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100, help="trials per window (each an A/A and an A/B)")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--pause", type=float, default=60, help="seconds between windows")
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--max-new", type=int, default=32)
    parser.add_argument("--dump", type=Path, help="write each stored-mode measurement (latencies, probe timings) "
                                                  "as JSON lines, to study other rules offline")
    parser.add_argument("--rejudge", type=Path, help="judge the stored columns again from a --dump file with this "
                                                     "checkout's rules (no replay)")
    args = parser.parse_args()
    if args.rejudge:
        return rejudge(args.rejudge)
    dump = args.dump.open("w") if args.dump else None
    spec = ModelSpec("tiny", "onnx", {"path": str(MODEL), "provider": "cpu", "threads": 1},
                     TokenizerSpec(tokenizer_json=MODEL / "tokenizer.json"), None, "benchmark", Path("."))
    model = OnnxBackend(spec)
    counter = load_counter(TokenizerSpec(tokenizer_json=MODEL / "tokenizer.json"))
    words = "refund order invoice shipping account password router update settings plan export".split()
    requests = [(Request(f"p{i}", " ".join(words[: 3 + i % 9]) + f" #{i}", {"max_new_tokens": args.max_new}),
                 1, Decimal(1)) for i in range(args.prompts)]
    same, slower = Slower(model, 0.0), Slower(model, 0.10)
    probe = Probe()

    def measure(backend: Slower) -> SuiteEntry:
        probe.samples = []
        results = replay(backend, requests, counter, None, warmup=2, probe=probe)[0]
        return entry(results, probe.samples)

    def bench(backend: Slower) -> dict:
        """pytest-benchmark's way: time the workload (the prompt set once) for a number of rounds."""
        for request, _, _ in requests[:2]:
            backend.complete(request)
        stats = Stats()
        for _ in range(BENCH_ROUNDS):
            began = time.perf_counter()
            for request, _, _ in requests:
                backend.complete(request)
            stats.update(time.perf_counter() - began)
        return stats.as_dict()

    check = PercentageRegressionCheck("median", 5.0)
    stored_base, bench_base = measure(same), bench(same)

    def record(window: int, kind: str, e: SuiteEntry) -> None:
        if dump is not None:
            rows = list(e.prompts.values())
            dump.write(json.dumps({"window": window, "kind": kind, "e2e": [r.e2e_ms for r in rows],
                                   "probe": list(e.calibration.ms) if e.calibration else None}) + "\n")
            dump.flush()

    record(0, "base", stored_base)
    columns = ("live", "stored", "stored+calib", "pytest-bench")
    print(f"{args.trials} trials per window x {args.windows} windows ({args.pause:g} s apart), {args.prompts} prompts x "
          f"{args.max_new} new tokens, llama-tiny on CPU ({model.fingerprint()['device']}), latency_p50 fail at +5%, "
          f"head +10% for A/B; stored baselines measured once before window 1", flush=True)
    totals = {(c, k): [0, 0] for c in columns for k in ("A/A", "A/B")}  # fails, trials
    factors_all: list[float] = []
    for window in range(1, args.windows + 1):
        if window > 1:
            time.sleep(args.pause)
        counts = {(c, k): [0, 0] for c in columns for k in ("A/A", "A/B")}
        inconclusive = {c: 0 for c in columns}
        factors: list[float] = []
        started = time.perf_counter()
        for _ in range(args.trials):
            for kind, head_backend in (("A/A", same), ("A/B", slower)):
                pairs = [(r, r, 1, 1, w) for r, _, w in requests]
                base_live, head_live = replay_interleaved(same, head_backend, pairs, (counter, counter),
                                                          (None, None), warmup=2)
                outcome = {"live": verdict(entry(base_live), entry(head_live), False)}
                head = measure(head_backend)
                record(window, kind, head)
                outcome["stored"] = verdict(stored_base, head, False)
                outcome["stored+calib"] = verdict(stored_base, head, True)
                outcome["pytest-bench"] = "fail" if check.fails(bench(head_backend), bench_base) else "pass"
                from pytest_costgate.judge.calibration import speed

                found = speed(stored_base.calibration.ms, head.calibration.ms)
                if found is not None:
                    factors.append(found.factor)
                for column, status in outcome.items():
                    counts[column, kind][0] += status == "fail"
                    counts[column, kind][1] += 1
                    inconclusive[column] += kind == "A/B" and status == "inconclusive"
        print(f"\nwindow {window}: {time.perf_counter() - started:.0f} s, runner speed factor vs the stored baseline "
              f"median {sorted(factors)[len(factors) // 2]:.3f} (range {min(factors):.3f}-{max(factors):.3f})")
        factors_all += factors
        print(f"{'column':14} {'false alarms (A/A fail)':>26} {'detection (A/B fail)':>26} {'A/B inconclusive':>17}")
        for column in columns:
            aa, ab = counts[column, "A/A"], counts[column, "A/B"]
            print(f"{column:14} {rate(*aa):>26} {rate(*ab):>26} {inconclusive[column] / ab[1]:>16.1%}")
            for kind in ("A/A", "A/B"):
                totals[column, kind][0] += counts[column, kind][0]
                totals[column, kind][1] += counts[column, kind][1]
    print(f"\nall windows ({args.windows * args.trials} trials per cell):")
    print(f"{'column':14} {'false alarms (A/A fail)':>26} {'detection (A/B fail)':>26}")
    for column in columns:
        print(f"{column:14} {rate(*totals[column, 'A/A']):>26} {rate(*totals[column, 'A/B']):>26}")
    print("goals: stored+calib <= 1% false alarms and >= 90% detection in every window; live <= 1% / >= 95%")


if __name__ == "__main__":
    main()
