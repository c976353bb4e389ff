"""A suite's verdict as documents store it: the rows of compared metrics, the status, and the facts that reports
put into words (judge/ computes them; report/ formats them for people)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

ORDER = {"pass": 0, "new": 0, "no-baseline": 0, "warn": 1, "fail": 2}  # how severe a suite status is
ROW_STATUSES = ("pass", "warn", "fail", "inconclusive", "not-comparable", "info")


@dataclass(frozen=True)
class Row:
    """One metric compared: values, change, the threshold that applied and the outcome."""

    metric: str
    baseline: str | None
    candidate: str | None
    delta: str | None
    delta_pct: str | None
    threshold: str | None
    status: str  # pass | warn | fail | inconclusive | not-comparable | info
    interval: str | None = None  # noisy metrics: the paired estimate and its confidence interval


@dataclass(frozen=True)
class Levers:
    """One side's cost levers, as fractions of its input tokens or requests (None: not measured there)."""

    cacheable_prefix_share: Decimal | None = None  # input tokens a prefix cache could serve (prefix_cache rule)
    cache_hit_ratio: Decimal | None = None  # input tokens the server reported cached
    served: Mapping[str, Decimal] = field(default_factory=lambda: MappingProxyType({}))  # routed: model -> share
    escalation_rate: Decimal | None = None  # routed: requests sent past the suite's default model

    def to_json(self) -> dict[str, Any]:
        def text(value: Decimal | None) -> str | None:
            return None if value is None else f"{value:f}"

        return {"cacheable_prefix_share": text(self.cacheable_prefix_share),
                "cache_hit_ratio": text(self.cache_hit_ratio),
                "served": {name: f"{share:f}" for name, share in self.served.items()},
                "escalation_rate": text(self.escalation_rate)}


@dataclass(frozen=True)
class SuiteVerdict:
    """How a suite was judged. `notes` are the judge's own sentences; the other facts are typed, for reports to
    put into words (report/notes.py) and for code to read (the PR comment's driver line)."""

    status: str  # pass | warn | fail | new | no-baseline
    rows: tuple[Row, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    template_changed: bool = False  # the template's hash differs from the baseline's (the attribution names files)
    prices_changed: bool = False  # the price table differs from the baseline's
    levers: tuple[Levers | None, Levers] | None = None  # (the baseline's or None for a new suite, this run's)
    prefix_end: str | None = None  # where the prompts' shared prefix now ends, when their cacheable share fell

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "rows": [asdict(r) for r in self.rows], "notes": list(self.notes)}
        # the facts only when they say something: a verdict without them reads as before
        if self.template_changed:
            out["template_changed"] = True
        if self.prices_changed:
            out["prices_changed"] = True
        if self.levers is not None:
            base, head = self.levers
            out["levers"] = {"baseline": None if base is None else base.to_json(), "candidate": head.to_json()}
        if self.prefix_end is not None:
            out["prefix_end"] = self.prefix_end
        return out
