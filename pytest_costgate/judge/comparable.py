"""Whether two environment fingerprints allow comparing noisy metrics (latency, GPU-time cost), and which keys
differ. The fingerprints themselves are taken where a run happens (store/stamp.py, and each backend's own)."""
from __future__ import annotations

from collections.abc import Mapping

# Latency measured where any of these differ is not comparable.
COMPARABLE_KEYS = ("os", "machine", "cpu", "cpus", "python", "backend", "endpoint", "model", "function",
                   "provider", "device", "onnxruntime")


LOCAL_BACKENDS = ("onnx", "genai")


def comparable(a: Mapping[str, str] | None, b: Mapping[str, str] | None) -> tuple[bool, list[str]]:
    """Whether two fingerprints allow comparing noisy metrics, and which keys differ."""
    if not a or not b:
        return False, ["fingerprint missing"]
    # A local model's file is what a PR changes (quantized, re-exported), not where it runs: on the same device
    # and runtime its latency compares. An API's model name is a different deployment: it does not.
    local = a.get("backend") in LOCAL_BACKENDS and b.get("backend") == a.get("backend")
    differ = [k for k in COMPARABLE_KEYS if a.get(k) != b.get(k) and not (local and k == "model")]
    return not differ, differ
