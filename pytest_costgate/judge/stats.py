"""Paired comparison of noisy metrics: per-prompt ratios, a bootstrap interval over prompts, a decision.

A change fails only when its estimate exceeds the threshold AND the interval excludes "no change";
above the threshold but not significant is "inconclusive" (shown, never failing).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from ..config.thresholds import Threshold

RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 20261122  # fixed: the same data always gives the same interval and verdict


@dataclass(frozen=True)
class Paired:
    """A paired estimate of head vs base over prompts: ratio (geometric mean) or difference (mean)."""

    estimate: float
    low: float
    high: float
    n: int
    relative: bool

    @property
    def worse(self) -> bool:
        """The whole interval lies above no change (ratio 1, difference 0): significantly worse."""
        return self.low > (1.0 if self.relative else 0.0)

    def text(self) -> str:
        if self.relative:
            return (f"{(self.estimate - 1) * 100:+.1f}% [{(self.low - 1) * 100:+.1f}%, {(self.high - 1) * 100:+.1f}%] "
                    f"over {self.n} prompts")
        return f"{self.estimate:+.2f} [{self.low:+.2f}, {self.high:+.2f}] over {self.n} prompts"


def paired(base: Sequence[float], head: Sequence[float], relative: bool, resamples: int = RESAMPLES,
           confidence: float = CONFIDENCE, run_sd: float = 0.0) -> Paired | None:
    """Bootstrap (over prompts) interval of the geometric-mean ratio or the mean difference; None if < 2 pairs.

    `run_sd`: the spread of a whole run's log-speed (from the baseline's rounds), added to each replicate as
    a normal draw, so a run-level shift the prompts can't show widens the interval instead of failing."""
    b, h = np.asarray(base, dtype=float), np.asarray(head, dtype=float)
    keep = np.isfinite(b) & np.isfinite(h) & ((b > 0) & (h > 0) if relative else True)
    b, h = b[keep], h[keep]
    if len(b) < 2:
        return None
    rng = np.random.default_rng(SEED)
    picks = rng.integers(0, len(b), size=(resamples, len(b)))
    if relative:
        values = np.log(h / b)
        means = values[picks].mean(axis=1)
        estimate = float(values.mean())
        if run_sd > 0:
            means = means + rng.normal(0.0, run_sd, size=resamples)
    else:
        means = h[picks].mean(axis=1) - b[picks].mean(axis=1)
        estimate = float(h.mean() - b.mean())
        if run_sd > 0:  # a relative spread, applied to the head's mean time
            means = means + h.mean() * rng.normal(0.0, run_sd, size=resamples)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    if relative:
        return Paired(math.exp(estimate), math.exp(low), math.exp(high), len(b), True)
    return Paired(estimate, float(low), float(high), len(b), False)


def decide(result: Paired, threshold: Threshold) -> tuple[bool, bool]:
    """(exceeds the threshold, significantly worse): fail needs both, inconclusive is the first alone."""
    if result.relative != threshold.relative:
        raise ValueError("a relative threshold needs a ratio estimate, an absolute one a difference")
    change = (result.estimate - 1) * 100 if result.relative else result.estimate
    return Decimal(repr(change)) > threshold.amount, result.worse


@dataclass(frozen=True)
class Percentile:
    """A p95 (or other quantile) of per-prompt values with a bootstrap interval over prompts."""

    estimate: float
    low: float
    high: float
    n: int

    def text(self) -> str:
        return f"{self.estimate:,.1f} ms [{self.low:,.1f}, {self.high:,.1f}] over {self.n} prompts"


def quantile_interval(values: Sequence[float], q: float = 0.95, resamples: int = RESAMPLES,
                      confidence: float = CONFIDENCE) -> Percentile | None:
    """The sample quantile (linear interpolation, as the reports' p95) and its bootstrap interval; None if < 2."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return None
    rng = np.random.default_rng(SEED)
    samples = np.quantile(v[rng.integers(0, len(v), size=(resamples, len(v)))], q, axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Percentile(float(np.quantile(v, q)), float(low), float(high), len(v))


def budget_status(result: Percentile | None, budget: float) -> str:
    """Over a budget only when the estimate exceeds it and the whole interval lies above it; an estimate
    over it with an interval reaching below is inconclusive; an estimate within it passes."""
    if result is None:
        return "inconclusive"
    if result.estimate <= budget:
        return "pass"
    return "fail" if result.low > budget else "inconclusive"
