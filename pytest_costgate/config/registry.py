"""The names a model's `backend:` may take, and the class each names: built-ins by a lazy dotted path (nothing is
imported until a config names the backend), third parties by entry point. The config checks a model's options
against its class; replay/ creates it."""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

ENTRY_POINT_GROUP = "costgate.backends"


BUILTIN: dict[str, str] = {
    "openai": "pytest_costgate.replay.backends.openai:OpenAIBackend",
    "python": "pytest_costgate.replay.backends.python:PythonBackend",
    "onnx": "pytest_costgate.replay.backends.onnx:OnnxBackend",
    "genai": "pytest_costgate.replay.backends.genai:GenaiBackend",
    "anthropic": "pytest_costgate.replay.backends.anthropic:AnthropicBackend",
    "gemini": "pytest_costgate.replay.backends.gemini:GeminiBackend",
}


def _available() -> dict[str, str]:
    found = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def backend_class(name: str) -> Any:
    """Import the class registered under `name`; LookupError lists what exists."""
    from .yamlsrc import did_you_mean

    available = _available()
    if name not in available:
        raise LookupError(f"unknown backend '{name}'.{did_you_mean(name, available)} Available: "
                          f"{', '.join(sorted(available))} (third parties register under the "
                          f"'{ENTRY_POINT_GROUP}' entry point group).")
    module, _, attr = available[name].partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise LookupError(f"backend '{name}' is registered as {available[name]} but cannot be imported: "
                          f"{exc}") from None


def backend_options(name: str) -> frozenset[str]:
    """The config keys a backend accepts besides backend/tokenizer/pricing."""
    return frozenset(backend_class(name).OPTIONS)
