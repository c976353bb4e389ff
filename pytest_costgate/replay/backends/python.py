"""A `module:function` callable as a model, for anything costgate has no backend for."""
from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from typing import Any, ClassVar

from ...config.specs import ModelSpec
from ...safety.errors import BackendError
from . import CONCURRENCY_OPTIONS, Completion, Request, check_concurrency


class PythonBackend:
    """Calls `function(prompt, params)`; it returns text or {"text", "input_tokens", "output_tokens",
    "cached_tokens", "model"} ('model': which model a router sent it to)."""

    OPTIONS: ClassVar[frozenset[str]] = frozenset({"function", "path"}) | CONCURRENCY_OPTIONS

    @classmethod
    def check_options(cls, options: Any, fail: Callable[[str, str], Exception]) -> None:
        check_concurrency(options, fail)

    @classmethod
    def identity(cls, spec: ModelSpec) -> str:
        """The function's module file (incremental replay: an edit to it replays every prompt; what it imports
        or reads is not covered)."""
        from ..identity import module_identity

        return module_identity(spec.options.get("function", ""), (spec.base_dir / str(spec.options.get("path", "."))))

    def __init__(self, spec: ModelSpec) -> None:
        # concurrency > 1 calls the function from several threads at once: it must be thread-safe
        self.concurrency, self.max_requests_per_s = check_concurrency(
            spec.options, lambda name, message: BackendError(f"{spec.where}: {name}: {message}"))
        target = spec.options.get("function")
        if not isinstance(target, str) or ":" not in target:
            raise BackendError(f"{spec.where}: 'function' must be 'module:function', e.g. 'my_models:answer'.")
        if "path" in spec.options:
            folder = str((spec.base_dir / str(spec.options["path"])).resolve())
            if folder not in sys.path:
                sys.path.insert(0, folder)
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise BackendError(f"{spec.where}: cannot import '{module_name}' ({exc}). Add 'path:' with the "
                               "folder that holds it, relative to the config.") from None
        fn = getattr(module, attr, None)
        if not callable(fn):
            raise BackendError(f"{spec.where}: '{module_name}' has no callable '{attr}'.")
        self.fn: Callable[..., Any] = fn
        self.target = target

    def fingerprint(self) -> dict[str, str]:
        return {"backend": "python", "function": self.target}

    def close(self) -> None:
        pass

    def complete(self, request: Request) -> Completion:
        prompt = request.prompt if isinstance(request.prompt, str) else [dict(m) for m in request.prompt]
        start = time.perf_counter()
        try:
            result = self.fn(prompt, dict(request.params))
        except Exception as exc:  # noqa: BLE001 - the user's model code can raise anything
            return Completion(error=f"{self.target} raised {type(exc).__name__}: {exc}")
        e2e = (time.perf_counter() - start) * 1000
        if isinstance(result, str):
            return Completion(text=result, e2e_ms=e2e)
        if not isinstance(result, dict) or not isinstance(result.get("text"), str):
            return Completion(error=f"{self.target} must return a str or a dict with 'text', got "
                              f"{type(result).__name__}")
        counts = {k: result.get(k) for k in ("input_tokens", "output_tokens")}
        engine = all(isinstance(v, int) for v in counts.values())
        model = result.get("model")  # a router says which model answered
        return Completion(text=result["text"], e2e_ms=e2e, ttft_ms=result.get("ttft_ms"),
                          input_tokens=counts["input_tokens"] if engine else None,
                          output_tokens=counts["output_tokens"] if engine else None,
                          token_source="engine" if engine else "tokenizer",
                          cached_tokens=result.get("cached_tokens") if isinstance(result.get("cached_tokens"), int)
                          else None,
                          served_by=model[:10_000] if isinstance(model, str) and model else None)  # redacted, then cut
