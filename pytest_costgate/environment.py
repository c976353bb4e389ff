"""Where a run happened: the fingerprint that decides whether two latencies can be compared, and the commit."""
from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path
from typing import Mapping

from . import __version__

# Latency measured where any of these differ is not comparable.
COMPARABLE_KEYS = ("os", "machine", "cpu", "cpus", "python", "backend", "endpoint", "model", "function",
                   "provider", "device", "onnxruntime")
LOCAL_BACKENDS = ("onnx", "genai")


def environment() -> dict[str, str]:
    """Where this run happened: enough to tell whether two latencies can be compared."""
    return {
        "os": platform.system(), "machine": platform.machine(), "cpu": cpu_model(),
        "cpus": str(os.cpu_count() or 0), "python": platform.python_version(), "costgate": __version__,
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


def comparable(a: Mapping[str, str] | None, b: Mapping[str, str] | None) -> tuple[bool, list[str]]:
    """Whether two fingerprints allow comparing noisy metrics, and which keys differ."""
    if not a or not b:
        return False, ["fingerprint missing"]
    # A local model's file is what a PR changes (quantized, re-exported), not where it runs: on the same device
    # and runtime its latency compares. An API's model name is a different deployment: it does not.
    local = a.get("backend") in LOCAL_BACKENDS and b.get("backend") == a.get("backend")
    differ = [k for k in COMPARABLE_KEYS if a.get(k) != b.get(k) and not (local and k == "model")]
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
