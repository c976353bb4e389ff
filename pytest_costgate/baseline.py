"""The `costgate/1` document shared by baselines and JSON reports: read, check, write atomically."""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import SCHEMA, __version__
from .config import Config
from .errors import BaselineError
from .redact import redact, redact_json_text

# Latency measured where any of these differ is not comparable.
COMPARABLE_KEYS = ("os", "machine", "cpu", "cpus", "python", "backend", "endpoint", "model", "function",
                   "provider", "device", "onnxruntime")


def environment() -> dict[str, str]:
    """Where this run happened: enough to tell whether two latencies can be compared."""
    return {
        "os": platform.system(), "machine": platform.machine(), "cpu": _cpu_model(),
        "cpus": str(os.cpu_count() or 0), "python": platform.python_version(), "costgate": __version__,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def comparable(a: dict[str, str] | None, b: dict[str, str] | None) -> tuple[bool, list[str]]:
    """Whether two fingerprints allow comparing noisy metrics, and which keys differ."""
    if not a or not b:
        return False, ["fingerprint missing"]
    differ = [k for k in COMPARABLE_KEYS if a.get(k) != b.get(k)]
    return not differ, differ


def git_sha(folder: Path) -> str | None:
    """The commit being gated: GITHUB_SHA in Actions, else `git rev-parse HEAD`, else None."""
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def document(config: Config, suites: dict[str, Any], summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """A full costgate/1 document for these suite results."""
    return {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_sha": git_sha(config.path.parent),
        "config": config_id(config.path),
        "environment": environment(),
        "prices": {"source": config.price_source, "date": config.price_date},
        "summary": summary or {},
        "suites": suites,
    }


def config_id(path: Path) -> str:
    """The config's path relative to the working directory (the gate id of its PR comment), else its name."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return path.name


def load_baseline(path: Path) -> dict[str, Any] | None:
    """The stored baseline, None when there is none; a bad file raises BaselineError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{path}: cannot read baseline: {exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{path}:{exc.lineno}: the baseline is not valid JSON ({exc.msg}). Restore it "
                            "from git or re-create it with --costgate-update-baseline.") from None
    if not isinstance(doc, dict) or "schema" not in doc:
        raise BaselineError(f"{path}: not a costgate baseline (no 'schema' field). Re-create it with "
                            "--costgate-update-baseline.")
    if doc["schema"] != SCHEMA:
        raise BaselineError(f"{path}: baseline schema is {doc['schema']!r}, this costgate {__version__} "
                            f"reads {SCHEMA!r}. Re-create it with --costgate-update-baseline on the base "
                            "branch.")
    if not isinstance(doc.get("suites"), dict):
        raise BaselineError(f"{path}: the baseline has no 'suites' mapping. Re-create it with "
                            "--costgate-update-baseline.")
    return doc


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Write JSON, redacted, so that readers see the old file or the new one, never a torn one."""
    _write_atomic(path, redact_json_text(json.dumps(doc, indent=2, default=_default) + "\n"))


def write_text_atomic(path: Path, text: str) -> None:
    """Write text, redacted, via a temp file in the same folder, fsync, then rename over the target."""
    _write_atomic(path, redact(text))


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~_umask())  # mkstemp's 0600 would hide a committed baseline
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def decimal_text(value: Decimal) -> str:
    """A Decimal for JSON: fixed-point, at most 12 places, no trailing zeros (never '0E-25')."""
    return f"{value.quantize(Decimal('1e-12')).normalize():f}" if value.is_finite() else str(value)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return decimal_text(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def removed_suites(config: Config, baseline: dict[str, Any] | None) -> list[str]:
    """Suites the baseline has that the config no longer names."""
    return removed_suites_of({s.name for s in config.suites}, baseline)


def removed_suites_of(names: set[str], baseline: dict[str, Any] | None) -> list[str]:
    return [name for name in ((baseline or {}).get("suites") or {}) if name not in names]


def summary(suites: dict[str, Any], baseline: dict[str, Any] | None, removed: list[str]) -> dict[str, Any]:
    """Run-level figures: overall status, the monthly estimate with its change, removed suites."""
    from .verdict import worst

    base = (baseline or {}).get("suites") or {}
    cand_total = base_total = Decimal(0)
    compared = False
    for name, entry in suites.items():
        month = entry["metrics"].get("monthly_cost")
        base_month = (base.get(name) or {}).get("metrics", {}).get("monthly_cost")
        if month is not None:
            cand_total += Decimal(month)
        if month is not None and base_month is not None:
            base_total += Decimal(base_month)
            compared = True
    return {
        "status": worst(e["verdict"]["status"] for e in suites.values()),
        "monthly_cost": decimal_text(cand_total),
        "baseline_monthly_cost": decimal_text(base_total) if compared else None,
        "monthly_delta": decimal_text(cand_total - base_total) if compared else None,
        "removed_suites": removed,
        "baseline_git_sha": (baseline or {}).get("git_sha"),
        "baseline_created": (baseline or {}).get("created"),
    }
