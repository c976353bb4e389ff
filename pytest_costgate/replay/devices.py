"""Which GPU a process replays on: on a multi-GPU runner each pytest-xdist worker takes its own."""
from __future__ import annotations

import os
import re
import subprocess


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
