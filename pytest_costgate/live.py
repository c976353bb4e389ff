"""A live baseline: replay the base git ref's suite next to the head's on the same runner, ABBA."""
from __future__ import annotations

import io
import statistics
import subprocess
import tarfile
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from .config import Config, SuiteSpec, load_config
from .errors import ConfigError, CostgateError
from .measure import stats


def base_config(config: Config, ref: str) -> tuple[Config | None, Path]:
    """The base ref's costgate config, read from a `git archive` of that ref (the working tree stays as it is).

    Returns None for the config when the ref has no config at that path (every suite is then new).
    """
    folder = config.path.parent
    top = _git(["rev-parse", "--show-toplevel"], folder).decode().strip()
    try:
        archive = _git(["archive", "--format=tar", ref], Path(top))
    except CostgateError as exc:
        raise CostgateError(f"--costgate-against {ref}: git cannot read that ref ({exc}). Fetch it first, e.g. "
                            "actions/checkout with fetch-depth: 0, or git fetch origin main.") from None
    tree = Path(tempfile.mkdtemp(prefix="costgate-base-"))
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        try:
            tar.extractall(tree, filter="data")
        except TypeError:  # Python without extraction filters; the archive comes from our own git
            tar.extractall(tree)
    path = tree / config.path.resolve().relative_to(Path(top).resolve())
    if not path.exists():
        return None, tree
    try:
        return load_config(path), tree
    except ConfigError as exc:
        raise CostgateError(f"--costgate-against {ref}: the base ref's config is invalid: {exc}") from None


def _git(args: list[str], cwd: Path) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=120, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        raise CostgateError(f"git {' '.join(args)} failed: {exc}") from None
    if done.returncode != 0:
        raise CostgateError(done.stderr.decode(errors="replace").strip()[:300] or f"git {args[0]} failed")
    return done.stdout


def abba(run_base: Callable[[], dict[str, Any]], run_head: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Replay base, head, head, base: drift during the job hits both sides alike. Returns merged (base, head)."""
    first_base, first_head = run_base(), run_head()
    second_head, second_base = run_head(), run_base()
    return merge(first_base, second_base), merge(first_head, second_head)


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two measurements of one suite as one: tokens and outputs from the first, timings as per-prompt medians."""
    out = dict(a)
    prompts = {}
    for pid, record in a["prompts"].items():
        other = b["prompts"].get(pid)
        if other is None or "error" in record or "error" in other:
            prompts[pid] = record
            continue
        merged = dict(record)
        for field in ("e2e_ms", "ttft_ms", "tpot_ms", "busy_ms"):
            values = [r[field] for r in (record, other) if r.get(field) is not None]
            if values:
                merged[field] = statistics.median(values)
        merged["e2e_runs"] = (record.get("e2e_runs") or [record.get("e2e_ms")]) + (other.get("e2e_runs") or [other.get("e2e_ms")])
        if record.get("cost") is not None and other.get("cost") is not None:
            merged["cost"] = str((Decimal(record["cost"]) + Decimal(other["cost"])) / 2)
        merged["runs"] = (record.get("runs") or 1) + (other.get("runs") or 1)
        prompts[pid] = merged
    out["prompts"] = prompts
    ok = [r for r in prompts.values() if "error" not in r]
    out["latency"] = {f: stats(r.get(f) for r in ok) for f in ("e2e_ms", "ttft_ms", "tpot_ms")}
    out["wall_s"] = a.get("wall_s", 0) + b.get("wall_s", 0)
    return out


def base_suite_spec(base: Config | None, name: str) -> SuiteSpec | None:
    if base is None:
        return None
    return next((s for s in base.suites if s.name == name), None)
