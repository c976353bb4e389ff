"""A sharded suite whole again: its parts (pytest-xdist items or CI matrix jobs) checked complete and disjoint,
joined into one entry with its aggregates recomputed, and judged once. Which prompt goes to which shard is
replay/shards.py's."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType

from ..config.specs import Config, SuiteSpec
from ..inputs.prompts import load_prompt_set
from ..judge.aggregate import aggregate
from ..judge.compare import distinct
from ..safety.errors import CostgateError
from ..store.document import CALIBRATION_MAX_SAMPLES, Calibration, Document, SuiteEntry, decimal_text
from ..store.records import PromptResult
from .suite import judge_entry


def join_parts(name: str, parts: Sequence[SuiteEntry], requests_per_month: object = None) -> SuiteEntry:
    """One suite entry from its shards' entries (unjudged): records united, aggregates recomputed."""
    first = parts[0]
    for part in parts[1:]:
        for field in ("template_hash", "prompt_set", "model", "tokenizer", "pricing", "mode"):
            if getattr(part, field) != getattr(first, field):
                raise CostgateError(f"suite '{name}': its parts disagree on {field} ({getattr(first, field)} vs "
                                    f"{getattr(part, field)}); they come from different configs or prompt sets.")
    prompts: dict[str, PromptResult] = {}
    for part in parts:
        overlap = prompts.keys() & part.prompts.keys()
        if overlap:
            raise CostgateError(f"suite '{name}': prompt '{sorted(overlap)[0]}' was measured by two parts; parts must "
                                "be disjoint (the same shard twice?).")
        prompts.update(part.prompts)
    summary = aggregate(list(prompts.values()), first.requests_per_month, default_model=first.default_model)
    return replace(first, prompts=MappingProxyType(prompts), metrics=summary.metrics(),
                   latency=MappingProxyType(dict(summary.latency)),
                   errors=tuple(distinct(e for part in parts for e in part.errors)),
                   unmeasured=tuple(i for part in parts for i in part.unmeasured),
                   load_s=max(p.load_s for p in parts), wall_s=max(p.wall_s for p in parts),
                   template_files=MappingProxyType({k: v for p in parts for k, v in p.template_files.items()}),
                   served=MappingProxyType({name: decimal_text(share) for name, share in summary.served.items()}),
                   calibration=_probes(parts),
                   verdict=None, prompt_changes=(), baseline_template_hash=None, attribution=None)


def _probes(parts: Sequence[SuiteEntry]) -> Calibration | None:
    """The parts' calibration timings together (when every part took them with the same workload)."""
    found = [p.calibration for p in parts]
    if any(c is None for c in found) or len({c.workload for c in found if c is not None}) != 1:
        return None
    samples = [v for c in found if c is not None for v in c.ms]
    if len(samples) > CALIBRATION_MAX_SAMPLES:  # evenly thinned: every part keeps its share
        step = len(samples) / CALIBRATION_MAX_SAMPLES
        samples = [samples[int(i * step)] for i in range(CALIBRATION_MAX_SAMPLES)]
    return Calibration(found[0].workload, tuple(samples))  # type: ignore[union-attr]


def check_complete(name: str, shards: Mapping[int, SuiteEntry], total: int) -> None:
    """Every shard 1..total present once."""
    missing = sorted(set(range(1, total + 1)) - set(shards))
    if missing:
        raise CostgateError(f"suite '{name}': shard{'s' * (len(missing) > 1)} {', '.join(map(str, missing))} of "
                            f"{total} missing; merge needs every part.")


def join_and_judge(config: Config, spec: SuiteSpec, parts: Mapping[int, SuiteEntry], total: int,
                   baseline: Document | None) -> SuiteEntry:
    """A sharded suite, whole again: its parts checked complete and disjoint, joined, judged once."""
    check_complete(spec.name, parts, total)
    entry = join_parts(spec.name, [parts[k] for k in sorted(parts)])
    references = {r.id: r.reference for r in load_prompt_set(spec.prompts).records
                  if r.reference is not None} if spec.quality is not None else {}
    base = baseline.suites.get(spec.name) if baseline else None
    return judge_entry(config, spec, entry, base, baseline is not None, references)


def verify_parts(spec: SuiteSpec, parts: Mapping[int, SuiteEntry], total: int, base: SuiteEntry | None,
                 names: Mapping[int, str]) -> None:
    """Partial reports are files a job wrote and anyone could edit before the merge: each must hold exactly its
    shard of this commit's prompt set, count each prompt as this commit renders it, and price each record at the
    config's prices (tokens-only parts: exactly the records this commit's prompts give against the baseline).
    `names`: each part's file, for the error."""
    from ..pricing.prices import record_usage, request_cost
    from ..replay.shards import shard_of
    from .suite import count_tokens_only, price_now

    expected = count_tokens_only(spec, base.prompts if base is not None else {})[0]
    wanted: dict[int, set[str]] = {}
    for pid in expected.ids:
        wanted.setdefault(shard_of(pid, total), set()).add(pid)
    for k, part in sorted(parts.items()):
        where = f"{names.get(k, f'part {k}/{total}')}: suite '{spec.name}'"
        have = set(part.prompts) | set(part.unmeasured)
        foreign, missing = sorted(have - wanted.get(k, set())), sorted(wanted.get(k, set()) - have)
        if foreign:
            raise CostgateError(f"{where}: prompt '{foreign[0]}' is not in shard {k}/{total} of the prompt set at this "
                                f"commit ({len(foreign)} such); the part is from another prompt set, or was edited.")
        if missing:
            raise CostgateError(f"{where}: prompt '{missing[0]}' of shard {k}/{total} is missing ({len(missing)} "
                                "missing); every prompt of the shard must be measured or listed as unmeasured.")
        index = expected.index()
        for pid, record in part.prompts.items():
            row = expected[pid] if pid in index else None
            if row is None:
                continue
            if record.rendered_tokens != row.rendered_tokens:
                raise CostgateError(f"{where}: prompt '{pid}' says it rendered to {record.rendered_tokens} tokens; this "
                                    f"commit's template and tokenizer make {row.rendered_tokens}. Merge parts of this "
                                    "commit, unedited.")
            if part.mode == "tokens-only" and (record.input_tokens, record.output_tokens) != (row.input_tokens,
                                                                                             row.output_tokens):
                raise CostgateError(f"{where}: prompt '{pid}' has {record.input_tokens} input and "
                                    f"{record.output_tokens} output tokens; counted again here: {row.input_tokens} and "
                                    f"{row.output_tokens}.")
            if record.error is not None:
                continue
            price = price_now(spec, record)
            device = record.busy_ms if record.busy_ms is not None else record.e2e_ms
            cost = request_cost(price, record_usage(record), device) if price is not None else None
            if part.mode == "tokens-only" and row.cost is not None:
                cost = row.cost  # tokens-only cost may be the layout's projection (prefix_cache)
            if cost != record.cost and not (cost is None and record.cost is None):
                raise CostgateError(f"{where}: prompt '{pid}' costs {record.cost} in the part, but its usage costs "
                                    f"{cost} at the config's prices; the part was edited or made with other prices.")
