"""Importing ONNX Runtime, or a clear error naming the package this platform needs (the onnx backend and the
machine-speed probe both run on it)."""
from __future__ import annotations

import sys
from typing import Any

from ...safety.errors import BackendError


def import_onnxruntime(where: str) -> Any:
    """onnxruntime, or a clear error naming the package this platform needs."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        import platform

        gpu = (sys.platform, platform.machine()) in (("linux", "x86_64"), ("win32", "AMD64"))
        package = "onnxruntime-gpu (CUDA; or onnxruntime for CPU only)" if gpu else "onnxruntime"
        raise BackendError(f"{where}: the onnx backend needs ONNX Runtime, which is not importable here ({exc}). "
                           f"Install {package}: pip install {package.split()[0]}.") from None
    return ort
