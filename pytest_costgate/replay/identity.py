"""A model's identity: what decides its answers besides the request (backend, options without credentials, and
for a local model its files' content). Incremental replay hashes it into every request hash."""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from ..config.registry import backend_class
from ..config.specs import ModelSpec

SECRET_OPTIONS = frozenset({"headers"})  # credentials never enter a hash that is stored


def model_identity(spec: ModelSpec) -> str:
    """What decides a model's answers besides the request: backend, options and, for a model file, its content."""
    options = {k: v for k, v in spec.options.items() if k not in SECRET_OPTIONS and not k.endswith("_env")}
    identity: dict[str, Any] = {"backend": spec.backend, "options": options}
    extra = getattr(backend_class(spec.backend), "identity", None)
    if extra is not None:
        identity["model"] = extra(spec)
    return json.dumps(identity, sort_keys=True, default=str)


@functools.lru_cache(maxsize=64)
def file_digest(path: Path, size: int, mtime: float) -> str:
    """sha256 of a model file (cached per size and mtime: hashing gigabytes once per run is enough)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def digest_of(path: Path) -> str:
    """file_digest of a file as it is now."""
    info = path.stat()
    return file_digest(path, info.st_size, info.st_mtime)
