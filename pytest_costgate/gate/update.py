"""A baseline update: this run's suites merged into the baseline file, never shrinking a suite silently.

A suite this run did not measure completely (time budget, failed requests) keeps its old entry unless the
partial opt-in merges the old records of the prompts it missed. Concurrent `-k` updates both land: the file
is re-read, merged and written while holding its lock (store/write.py).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from filelock import Timeout

from ..config.specs import Config
from ..judge.aggregate import aggregate
from ..safety.errors import BaselineError
from ..store.document import SuiteEntry
from ..store.schema import read_document
from ..store.stamp import document
from ..store.write import LOCK_TIMEOUT_S, clean_stale_temps, lock_for, write_json_atomic


@dataclass(frozen=True)
class Update:
    """What a baseline update did: the lines to print and whether everything asked for was written."""

    lines: tuple[str, ...]
    ok: bool


def update_baseline(config: Config, suites: Mapping[str, SuiteEntry], partial: bool) -> Update:
    """Merge this run's suites into the baseline file: re-read, merge and write while holding its lock."""
    path = config.baseline
    lines: list[str] = []
    ok = True
    try:
        with lock_for(path):
            clean_stale_temps(path)
            try:
                current = read_document(path)
            except BaselineError as exc:
                if not partial and any(e.unmeasured or e.metrics.errors for e in suites.values()):
                    raise
                lines.append(f"costgate: warning: the old baseline is unreadable and will be replaced ({exc})")
                current = None
            stored = dict(current.suites) if current else {}
            changed = False
            for name, entry in suites.items():
                merged, message = _merge(name, entry.stored(), stored.get(name), partial)
                if merged is None:
                    ok = False
                else:
                    stored[name], changed = merged, True
                if message:
                    lines.append(message)
            if not changed:
                return Update((*lines, f"costgate: the baseline {path} was left as it was"), ok)
            order = [s.name for s in config.suites]
            kept = {name: stored[name] for name in order if name in stored}
            write_json_atomic(path, document(config, kept, "baseline"))
            lines.append(f"costgate: wrote baseline {path}")
    except Timeout:
        return Update((f"costgate: ERROR: could not write the baseline: another costgate run has held its lock for "
                       f"{LOCK_TIMEOUT_S}s",), False)
    except (OSError, BaselineError) as exc:
        return Update((*lines, f"costgate: ERROR: could not write the baseline to {path}: {exc}"), False)
    return Update(tuple(lines), ok)


def _merge(name: str, entry: SuiteEntry, old: SuiteEntry | None, partial: bool) -> tuple[SuiteEntry | None, str | None]:
    """The entry to store for one suite, or None (keep the old one) when this run missed prompts."""
    if old is not None and any(r.reused for r in entry.prompts.values()):
        # An incremental run: unchanged prompts keep the baseline's own records, timings included.
        # (their timings are the baseline's; their cost this run's, priced again at this run's prices)
        kept = {pid: (replace(old.prompts[pid], cost=r.cost, weight=r.weight) if r.reused and pid in old.prompts
                      else replace(r, reused=False)) for pid, r in entry.prompts.items()}
        entry = replace(entry, prompts=MappingProxyType(kept),
                        metrics=aggregate(list(kept.values()), entry.requests_per_month).metrics())
    failed = [pid for pid, r in entry.prompts.items() if r.error is not None]
    missing = list(entry.unmeasured) + failed
    if not missing:
        return entry, None
    what = (f"{len(entry.unmeasured)} prompt(s) not measured (time budget)" if entry.unmeasured else "") + \
        (", " if entry.unmeasured and failed else "") + (f"{len(failed)} failed" if failed else "")
    if not partial:
        left = "its baseline entry was left as it was" if old else "it was not added to the baseline"
        return None, (f"costgate: ERROR: suite '{name}': {what}; {left}. Re-run "
                      "without a time budget once the model answers, or add --costgate-update-partial to keep the "
                      "old records of the prompts this run missed.")
    old_records = old.prompts if old else {}
    records = {pid: r for pid, r in entry.prompts.items() if r.error is None}
    reused = [pid for pid in missing if pid in old_records and old_records[pid].error is None]
    records.update({pid: old_records[pid] for pid in reused})
    dropped = len(missing) - len(reused)
    metrics = aggregate(list(records.values()), entry.requests_per_month).metrics()
    merged = replace(entry, prompts=MappingProxyType(records), metrics=metrics, unmeasured=(), errors=())
    return merged, (f"costgate: suite '{name}': {what}; kept the old baseline records of {len(reused)} of them"
                    + (f", {dropped} had none and are left out" if dropped else "") + " (--costgate-update-partial)")
