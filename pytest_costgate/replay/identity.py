"""A model's identity: everything besides the request that decides its answers and their token counts, hashed
into every request hash, so incremental replay reuses a baseline record only when nothing that could change it
changed.

It covers: the backend and costgate's version (the backend's code), a third-party backend's package version, the
model's options except credentials (`*_env` names and header values that look secret; other headers, such as a
tier or routing header, count), the tokenizer spec and the content of its files (a tiktoken file, tokenizer.json,
the chat template in tokenizer_config.json or chat_template.jinja beside it, an explicit chat template), every
file of a local model's folder (weights, external data, config.json, generation_config.json, tokenizer files),
and for a `python` model the content of the function's module file. Prices are not in it: reused records are
priced again with this run's prices (incremental.reuse).

What it does not cover, and reuse therefore assumes unchanged: a python model's other imports and the data it
reads, and a remote API's model behind the same name and options (a provider updating a model in place).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
from pathlib import Path
from typing import Any

from ..config.registry import BUILTIN, backend_class
from ..config.specs import ModelSpec, TokenizerSpec
from ..safety.redact import SENSITIVE_HEADER
from ..store.stamp import VERSION


def model_identity(spec: ModelSpec) -> str:
    """What decides a model's answers besides the request, as one JSON text (see the module's docstring)."""
    options = {k: v for k, v in spec.options.items() if k != "headers" and not k.endswith("_env")}
    headers = spec.options.get("headers") or {}
    if isinstance(headers, dict):
        options["headers"] = {str(k): str(v) for k, v in sorted(headers.items(), key=lambda kv: str(kv[0]))
                              if not SENSITIVE_HEADER.search(str(k))}
    identity: dict[str, Any] = {"backend": spec.backend, "options": options, "code": _code_version(spec.backend),
                                "tokenizer": tokenizer_identity(spec.tokenizer)}
    extra = getattr(backend_class(spec.backend), "identity", None)
    if extra is not None:
        identity["model"] = extra(spec)
    return json.dumps(identity, sort_keys=True, default=str)


def _code_version(backend: str) -> str:
    """costgate's version for a built-in backend; the installed package's for a third party's."""
    if backend in BUILTIN:
        return f"costgate {VERSION}"
    module = getattr(backend_class(backend), "__module__", "") or ""
    top = module.split(".")[0]
    try:
        return f"{top} {importlib.metadata.version(top)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{top} (no version)"


def tokenizer_identity(spec: TokenizerSpec) -> dict[str, Any]:
    """The tokenizer spec and the content of every file it reads."""
    files: dict[str, str] = {}
    for path in (spec.file, spec.tokenizer_json, spec.chat_template):
        if path is not None:
            files[str(path)] = digest_if_file(Path(path))
    if spec.tokenizer_json is not None:
        folder = Path(spec.tokenizer_json).parent
        for name in ("tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json"):
            files[name] = digest_if_file(folder / name)
    return {"encoding": spec.encoding, "per_message": spec.per_message, "per_name": spec.per_name,
            "reply_priming": spec.reply_priming, "files": files}


def folder_identity(folder: Path) -> dict[str, str]:
    """Every regular file of a model folder (recursively), by relative path, with its content's digest."""
    if not folder.is_dir():
        return {}
    return {path.relative_to(folder).as_posix(): digest_of(path) for path in sorted(folder.rglob("*"))
            if path.is_file()}


def local_identity(spec: ModelSpec) -> dict[str, Any]:
    """A local model (onnx, genai): its folder's files, and an explicit chat template file."""
    folder = (spec.base_dir / str(spec.options.get("path", ""))).resolve()
    out: dict[str, Any] = {"folder": folder_identity(folder)}
    if spec.options.get("chat_template"):
        out["chat_template"] = digest_if_file((spec.base_dir / str(spec.options["chat_template"])).resolve())
    return out


def module_identity(function: Any, base_dir: Path) -> str:
    """The content of a `module:function` target's module file (found as the python backend imports it)."""
    module = str(function).partition(":")[0]
    import sys

    added = str(base_dir) not in sys.path
    if added:
        sys.path.insert(0, str(base_dir))
    try:
        found = importlib.util.find_spec(module) if module else None
    except (ImportError, ValueError):
        found = None
    finally:
        if added:
            sys.path.remove(str(base_dir))
    origin = getattr(found, "origin", None)
    return digest_if_file(Path(origin)) if origin else "not found"


def digest_if_file(path: Path) -> str:
    try:
        return digest_of(path) if path.is_file() else "missing"
    except OSError:
        return "unreadable"


@functools.lru_cache(maxsize=256)
def file_digest(path: Path, size: int, mtime: float) -> str:
    """sha256 of a file (cached per size and mtime: hashing gigabytes once per run is enough)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def digest_of(path: Path) -> str:
    """file_digest of a file as it is now."""
    info = path.stat()
    return file_digest(path, info.st_size, info.st_mtime)
