"""What a document records of where and by what it was made: the machine's fingerprint (whether two latencies
can be compared is judge/comparable.py's question), the commit, costgate's version, the config it came from."""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from ..config.specs import Config
from .document import Document, SuiteEntry, Summary

VERSION = "0.1.0"  # the one place it is written: pyproject.toml reads it from here


def environment() -> dict[str, str]:
    """Where this run happened: enough to tell whether two latencies can be compared."""
    return {
        "os": platform.system(), "machine": platform.machine(), "cpu": cpu_model(),
        "cpus": str(os.cpu_count() or 0), "python": platform.python_version(), "costgate": VERSION,
    }


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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


def config_id(path: Path) -> str:
    """The config's path relative to the working directory (the gate id of its PR comment), else its name."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return path.name


def document(config: Config, suites: Mapping[str, SuiteEntry], kind: str, summary: Summary | None = None,
             shard: tuple[int, int] | None = None) -> Document:
    """A full costgate/1 document for these suites."""
    return Document(
        suites=MappingProxyType(dict(suites)), kind=kind,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), git_sha=git_sha(config.path.parent),
        config=config_id(config.path), environment=MappingProxyType(environment()),
        price_source=config.price_source, price_date=config.price_date, summary=summary,
        config_sha256=config_digest(config.path), shard=shard)


def config_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
