"""Machine-speed calibration for latency against a stored baseline.

A committed baseline was timed on another day, maybe on another runner of the same kind; a whole-run speed
shift of the machine (10% is common on shared CI) looks like a regression or hides one, and a per-prompt
bootstrap can't see it. So while the prompts replay, a fixed micro-workload (a small chain of matrix
products in ONNX Runtime, the same bytes in every version, independent of anything a pull request can change)
is timed after each request and its timings stored with the suite. At judging time the ratio of the two sides'
median timings is the runner's speed factor f, shown with its bootstrap interval; the head's latencies are
divided by f, and the paired interval is widened by what remains uncertain (compare.runner_noise): the factor's
own interval and a share of |log f|, because the workload tracks the model's speed only roughly (measured on
this project's 2-core runner: correlation 0.86 between their whole-run shifts, but the model's shift up to 1.3x
the probe's). So a runner in the baseline's state keeps the rule's full sensitivity, one far from it gives
`inconclusive` rather than a coin flip, and beyond the suite's bound latency is not comparable.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..store.document import CALIBRATION_MAX_SAMPLES as MAX_SAMPLES


@dataclass(frozen=True)
class Speed:
    """The head runner's speed relative to the baseline's: > 1 means slower (its times are longer)."""

    factor: float
    low: float
    high: float

    def text(self) -> str:
        """'runner 10% slower than at baseline time (time ×1.10 [1.08, 1.12])'."""
        change = round(abs(self.factor - 1) * 100)
        how = "as fast as" if change == 0 else f"{change}% {'slower' if self.factor > 1 else 'faster'} than"
        return f"runner {how} at baseline time (time ×{self.factor:.2f} [{self.low:.2f}, {self.high:.2f}])"


MIN_SAMPLES = 5


def usable(samples: Sequence[float] | None) -> np.ndarray | None:
    """The timings worth using (finite, at least a microsecond), evenly thinned to MAX_SAMPLES; None if too few."""
    if not samples:
        return None
    values = np.asarray([v for v in samples if isinstance(v, (int, float)) and math.isfinite(v) and v >= 0.001],
                        dtype=float)
    if len(values) > MAX_SAMPLES:
        values = values[np.linspace(0, len(values) - 1, MAX_SAMPLES).astype(int)]
    return values if len(values) >= MIN_SAMPLES else None


def speed(base: Sequence[float] | None, head: Sequence[float] | None, resamples: int = 2000,
          seed: int = 20261122) -> Speed | None:
    """The factor median(head) / median(base) with a 95% bootstrap interval; None without enough samples."""
    b, h = usable(base), usable(head)
    if b is None or h is None:
        return None
    rng = np.random.default_rng(seed)
    ratios = (np.median(h[rng.integers(0, len(h), size=(resamples, len(h)))], axis=1)
              / np.median(b[rng.integers(0, len(b), size=(resamples, len(b)))], axis=1))
    low, high = np.percentile(ratios, [2.5, 97.5])
    factor = float(np.median(h) / np.median(b))
    if not all(math.isfinite(v) and v > 0 for v in (factor, low, high)):
        return None
    return Speed(factor, float(low), float(high))
