"""Splitting a suite's prompts into shards and joining the parts again.

A prompt's shard follows from its id alone (a hash), so every worker and every CI matrix job agrees
without talking to the others, and a prompt stays in its shard when others are added. Parts are
joined only when they are complete, disjoint and from one config and commit.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import replace
from types import MappingProxyType
from typing import Mapping, Sequence

from .document import Calibration, SuiteEntry, decimal_text
from .records import PromptResult
from .errors import CostgateError

_SHARD = re.compile(r"^\s*([0-9]{1,4})\s*/\s*([0-9]{1,4})\s*$")


def shard_of(prompt_id: str, shards: int) -> int:
    """The 1-based shard a prompt belongs to, stable across runs and machines."""
    digest = hashlib.sha256(prompt_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % shards + 1


def parse_shard(text: str) -> tuple[int, int]:
    """'2/8' -> (2, 8); anything else is a CostgateError saying the form."""
    match = _SHARD.match(text or "")
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)) <= 1024:
        raise CostgateError(f"--costgate-shard {text!r}: expected K/N with 1 <= K <= N <= 1024, e.g. 2/8.")
    return int(match.group(1)), int(match.group(2))


def join_parts(name: str, parts: Sequence[SuiteEntry], requests_per_month: object = None) -> SuiteEntry:
    """One suite entry from its shards' entries (unjudged): records united, aggregates recomputed."""
    from .aggregate import aggregate
    from .compare import distinct

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
    from .calibration import MAX_SAMPLES

    samples = [v for c in found if c is not None for v in c.ms]
    if len(samples) > MAX_SAMPLES:  # evenly thinned: every part keeps its share
        step = len(samples) / MAX_SAMPLES
        samples = [samples[int(i * step)] for i in range(MAX_SAMPLES)]
    return Calibration(found[0].workload, tuple(samples))  # type: ignore[union-attr]


def check_complete(name: str, shards: Mapping[int, SuiteEntry], total: int) -> None:
    """Every shard 1..total present once."""
    missing = sorted(set(range(1, total + 1)) - set(shards))
    if missing:
        raise CostgateError(f"suite '{name}': shard{'s' * (len(missing) > 1)} {', '.join(map(str, missing))} of "
                            f"{total} missing; merge needs every part.")


def worker_device(worker: str | None, gpus: int) -> int | None:
    """The GPU an xdist worker takes on a multi-GPU runner: gw0 -> 0, gw1 -> 1, ... wrapping at the GPU count."""
    match = re.fullmatch(r"gw([0-9]+)", worker or "")
    if match is None or gpus < 2:
        return None
    return int(match.group(1)) % gpus


def gpu_count() -> int:
    """GPUs this process may use: CUDA_VISIBLE_DEVICES when set, else what nvidia-smi lists, else 1."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return 1
    return max(1, sum(1 for line in done.stdout.splitlines() if line.startswith("GPU "))) if done.returncode == 0 else 1
