"""Machine-speed calibration for stored baselines (issue 13): the probe, the speed factor, the rescaled pairs,
the bound beyond which latency is not comparable, and the baseline rounds' spread."""
from __future__ import annotations

import json
from decimal import Decimal
from types import MappingProxyType

import numpy as np
import pytest

from pytest_costgate.config.loader import MetricRule
from pytest_costgate.config.thresholds import parse_threshold
from pytest_costgate.judge.calibration import speed
from pytest_costgate.judge.compare import compare_suite, round_spread
from pytest_costgate.replay.probe import WORKLOAD, Probe
from pytest_costgate.store.document import Calibration, Metrics, SuiteEntry
from pytest_costgate.store.records import PromptResult

RULES = {"latency_p50": MetricRule(fail=parse_threshold("latency_p50", "+5%"))}
GATE = ["--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider"]


def entry(latencies, probes, runs=None) -> SuiteEntry:
    rows = [PromptResult(f"p{i}", Decimal(1), 10, input_tokens=10, output_tokens=5, e2e_ms=float(v),
                         runs=len(runs[i]) if runs else 1, e2e_runs=tuple(runs[i]) if runs else None)
            for i, v in enumerate(latencies)]
    return SuiteEntry(model="m", backend="onnx", mode="replay", template_hash="t", prompt_set={}, tokenizer="t",
                      pricing=None, requests_per_month=None, fingerprint={"same": "env"}, metrics=Metrics(),
                      prompts=MappingProxyType({r.id: r for r in rows}), repeats=len(runs[0]) if runs else 1,
                      calibration=None if probes is None else Calibration(WORKLOAD, tuple(float(p) for p in probes)))


def judged(base, head, max_factor=Decimal("1.25")):
    verdict = compare_suite(base, list(head.prompts.values()), head, RULES, [], [], None, max_factor)
    return next(r for r in verdict.rows if r.metric == "latency_p50"), verdict.notes


def test_probe_times_a_fixed_workload():
    probe = Probe()
    probe()
    probe()
    assert len(probe.samples) == 2 and all(0 < s < 1000 for s in probe.samples)


def test_speed_factor_and_interval():
    rng = np.random.default_rng(1)
    base = list(1.0 + 0.02 * rng.standard_normal(200))
    head = list(1.2 * (1.0 + 0.02 * rng.standard_normal(200)))
    found = speed(base, head)
    assert found.factor == pytest.approx(1.2, rel=0.02)
    assert found.low < found.factor < found.high and found.high - found.low < 0.05
    assert found.text().startswith("runner 20% slower than at baseline time (time ×1.20 [")
    assert speed(base[:4], head) is None  # too few timings to say


@pytest.mark.parametrize("slower, status", [(1.03, "pass"), (1.15, "inconclusive")])
def test_a_slower_runner_is_not_a_regression_once_calibrated(slower, status):
    rng = np.random.default_rng(2)
    base_lat = 20 + 10 * rng.random(40)
    base_probe = 0.5 * (1 + 0.01 * rng.standard_normal(40))
    head_lat = base_lat * slower * (1 + 0.01 * rng.standard_normal(40))  # the whole machine slower, same code
    head_probe = base_probe * slower * (1 + 0.01 * rng.standard_normal(40))
    row, notes = judged(entry(base_lat, base_probe), entry(head_lat, head_probe))
    # corrected to no change; a big shift is only partly trusted, so the interval can't rule a regression out
    assert row.status == status and row.interval.startswith(("-0.", "+0.")), row
    assert any(f"(time ×{slower:.2f} [" in n and "slower than at baseline time" in n for n in notes)
    row, _ = judged(entry(base_lat, None), entry(head_lat, None))  # the same without calibration
    assert row.status == ("pass" if slower < 1.05 else "fail")


def test_a_real_regression_on_a_faster_runner_is_still_caught():
    rng = np.random.default_rng(3)
    base_lat = 20 + 10 * rng.random(40)
    base_probe = 0.5 * (1 + 0.01 * rng.standard_normal(40))
    head_lat = base_lat * 1.20 / 1.10  # 20% slower code on a 10% faster machine: +9% raw
    head_probe = base_probe / 1.10
    row, _ = judged(entry(base_lat, base_probe), entry(head_lat, head_probe))
    assert row.status == "fail" and row.interval.startswith("+20.0%"), row


def test_another_kind_of_runner_is_not_comparable():
    base_lat = [20.0 + i for i in range(30)]
    row, notes = judged(entry(base_lat, [0.5] * 30), entry([v * 2 for v in base_lat], [1.0] * 30))
    assert row.status == "not-comparable"
    assert any("runner 100% slower than at baseline time (time ×2.00" in n
               and "outside calibration max_factor 1.25" in n for n in notes)
    row, _ = judged(entry(base_lat, [0.5] * 30), entry([v * 2 for v in base_lat], [1.0] * 30), Decimal(3))
    assert row.status == "inconclusive" and row.interval.startswith("+0.0%")  # within a wider bound: rescaled


def test_an_unstable_or_shifted_runner_makes_a_small_change_inconclusive_not_fail():
    rng = np.random.default_rng(4)
    base_lat = 20 + 10 * rng.random(30)
    quiet = 0.5 * (1 + 0.005 * rng.standard_normal(30))
    # +8% code change, the same runner state, steady probe: a confident fail, as without calibration
    row, _ = judged(entry(base_lat, quiet), entry(base_lat * 1.08, quiet))
    assert row.status == "fail", row
    # the probe itself unstable: its factor is uncertain, so is the change
    shaky = [0.5 * np.exp(0.4 * rng.standard_normal(30)) for _ in range(2)]
    row, _ = judged(entry(base_lat, shaky[0]), entry(base_lat * 1.08, shaky[1]))
    assert row.status == "inconclusive", row
    # the runner 12% slower than at baseline time: corrected, but only partly trusted
    row, _ = judged(entry(base_lat, quiet), entry(base_lat * 1.08 * 1.12, quiet * 1.12))
    assert row.status == "inconclusive" and row.interval.startswith("+8.0%"), row
    row, _ = judged(entry(base_lat, None), entry(base_lat * 1.08 * 1.12, None))  # uncalibrated: +21%, "fail"
    assert row.status == "fail"


def test_the_baseline_rounds_spread_widens_the_interval():
    rng = np.random.default_rng(5)
    shift = [1.0, 1.12, 0.9]  # whole rounds ran at different speeds
    base_runs = [[(20 + i) * s * (1 + 0.005 * rng.standard_normal()) for s in shift] for i in range(30)]
    sd, rounds = round_spread({f"p{i}": PromptResult(f"p{i}", Decimal(1), 1, e2e_runs=tuple(r), runs=3)
                               for i, r in enumerate(base_runs)})
    assert rounds == 3 and sd == pytest.approx(np.std(np.log(shift), ddof=1), rel=0.1)
    base = entry([sorted(r)[1] for r in base_runs], None, base_runs)
    head = entry([(20 + i) * 1.08 for i in range(30)], None)  # +8%: within the rounds' own spread
    row, notes = judged(base, head)
    assert row.status == "inconclusive", row
    assert any("rounds differ by" in n for n in notes)
    row, _ = judged(entry([sorted(r)[1] for r in base_runs], None), head)  # without the rounds: a confident fail
    assert row.status == "fail"


def test_local_models_store_probe_timings_and_others_do_not(pytester, demo):
    result = pytester.runpytest(*GATE, "--costgate-report", "r.json")
    assert result.ret == 0, result.stdout.str()
    suites = json.loads((demo / "r.json").read_text())["suites"]
    local = suites["local-answer"]
    assert local["calibration"]["workload"] == WORKLOAD and len(local["calibration"]["ms"]) >= 6
    assert all(0 < v < 1000 for v in local["calibration"]["ms"])
    assert suites["support-answer"]["calibration"] is None  # a python function: its speed isn't the machine's


def test_calibration_can_be_switched_off_or_bounded(tmp_path):
    from pytest_costgate.config.loader import load_config
    from pytest_costgate.safety.errors import ConfigError

    (tmp_path / "p.jsonl").write_text('{"id": "a", "vars": {}}\n')
    (tmp_path / "t.j2").write_text("hi")
    base = ("models:\n  m: {backend: python, function: x:y, tokenizer: cl100k_base}\n"
            "suites:\n  s: {model: m, prompts: p.jsonl, template: t.j2, calibration: %s}\n")
    for value, expected in (("on", Decimal("1.25")), ("off", None), ("{max_factor: 1.5}", Decimal("1.5"))):
        (tmp_path / "costgate.yaml").write_text(base % value)
        assert load_config(tmp_path / "costgate.yaml").suites[0].calibration_max_factor == expected
    (tmp_path / "costgate.yaml").write_text(base % "{max_factor: 0.9}")
    with pytest.raises(ConfigError, match="suites.s.calibration.max_factor"):
        load_config(tmp_path / "costgate.yaml")


def test_live_pairs_are_not_rounds_and_never_calibrated():
    from dataclasses import replace

    runs = [[20.0 + i, (20.0 + i) * 1.3] for i in range(30)]  # a live side's two runs differ a lot
    base = replace(entry([min(r) for r in runs], None, runs), repeats=1, fingerprint={"live": "HEAD"})
    head = replace(entry([20.0 + i for i in range(30)], None), fingerprint={"live": "HEAD"})
    row, notes = judged(base, head)
    assert row.status == "pass" and not any("rounds" in n or "calibration" in n for n in notes), (row, notes)


def test_a_configured_gpu_cost_is_not_widened_by_calibration():
    from dataclasses import replace

    rules = {"cost_per_request": MetricRule(fail=parse_threshold("cost_per_request", "+5%"))}
    pricing = {"kind": "gpu", "usd_per_hour": "3", "mode": "configured", "latency_s": "0.3", "concurrency": "8",
               "utilization": "1"}
    sides = []
    for speed_, probe in ((1.0, 0.5), (1.2, 0.6)):  # the head's runner 20% slower: same configured cost
        e = entry([20.0 * speed_ + i for i in range(30)], [probe] * 30)
        prompts = {k: replace(r, cost=Decimal("0.00003125")) for k, r in e.prompts.items()}
        sides.append(replace(e, pricing=pricing, prompts=MappingProxyType(prompts)))
    verdict = compare_suite(sides[0], list(sides[1].prompts.values()), sides[1], rules, [], [], None, Decimal("1.25"))
    row = next(r for r in verdict.rows if r.metric == "cost_per_request")
    assert row.status == "pass", row


@pytest.mark.parametrize("base_ms, note", [
    (None, "the baseline has no calibration timings (re-record it)"),
    ([1e-320] * 10, "fewer than 5 usable calibration timings on a side"),
    ([0.5] * 4, "fewer than 5 usable calibration timings on a side"),
])
def test_calibration_that_cannot_be_used_is_said_and_skipped(base_ms, note):
    from dataclasses import replace

    base = entry([20.0 + i for i in range(30)], None)
    if base_ms is not None:
        base = replace(base, calibration=Calibration(WORKLOAD, tuple(base_ms)))
    row, notes = judged(base, entry([20.0 + i for i in range(30)], [0.5] * 30))
    assert row.status == "pass"
    assert any(n.startswith("latency judged without calibration: ") and note in n for n in notes), notes
