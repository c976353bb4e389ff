"""The paired decision rule on synthetic samples with known answers."""
from __future__ import annotations

import numpy as np
import pytest

from pytest_costgate.config.thresholds import parse_threshold
from pytest_costgate.judge.stats import decide, paired

RULE = parse_threshold("latency_p50", "+5%")


def samples(change: float, noise: float, n: int = 40, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.uniform(50, 500, n)  # prompts differ a lot from each other; pairing removes that
    head = base * (1 + change) * rng.lognormal(0, noise, n)
    return base * rng.lognormal(0, noise, n), head


@pytest.mark.parametrize("change, noise, seed, exceeds, significant", [
    (0.0, 0.02, 1, False, False),   # no change: nothing to report
    (0.10, 0.02, 1, True, True),    # +10%, quiet machine: a real regression -> fail
    (0.10, 0.60, 2, True, False),   # +10%, huge noise: estimate +16% but not significant -> inconclusive
    (-0.10, 0.02, 1, False, False), # faster: never a failure
])
def test_decisions_with_known_answers(change, noise, seed, exceeds, significant):
    result = paired(*samples(change, noise, seed=seed), relative=True)
    assert decide(result, RULE) == (exceeds, significant)


def test_no_change_under_huge_noise_rarely_fails():
    fails = 0
    for seed in range(100):
        exceeds, significant = decide(paired(*samples(0.0, 0.60, seed=seed), relative=True), RULE)
        fails += exceeds and significant
    assert fails <= 5  # the fail rule needs threshold AND significance: at most the 2.5% upper tail


def test_estimate_and_interval_cover_the_true_ratio():
    result = paired(*samples(0.10, 0.02, n=60), relative=True)
    assert result.low < 1.10 < result.high and result.estimate == pytest.approx(1.10, abs=0.02)


def test_absolute_thresholds_use_the_mean_difference():
    base = np.full(30, 100.0) + np.linspace(-1, 1, 30)
    result = paired(base, base + 25, relative=False)
    assert result.estimate == pytest.approx(25)
    assert decide(result, parse_threshold("latency_p95", "+20ms")) == (True, True)
    assert decide(result, parse_threshold("latency_p95", "+30ms")) == (False, True)


def test_deterministic_and_needs_two_pairs():
    a = paired(*samples(0.05, 0.1), relative=True)
    assert a == paired(*samples(0.05, 0.1), relative=True)
    assert paired([1.0], [2.0], relative=True) is None
