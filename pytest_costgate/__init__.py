"""pytest-costgate: a cost-regression gate for LLM and ML inference.

The public surface, for code outside this package: a backend (the Protocol, what it is sent and what it returns),
the `costgate/1` document as typed records and the one reader that checks a file into them, and the error tree.
Everything else is private by convention: its modules may move between versions (ARCHITECTURE.md maps them).

The names load on first use, so that pytest, which imports this package with the plugin in every run, pays for
none of them in a run without --costgate.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "__version__": "store.stamp:VERSION", "SCHEMA": "store.document",
    # a backend
    "Backend": "replay.backends", "Completion": "replay.backends", "Prompt": "replay.backends",
    "Request": "replay.backends",
    # the costgate/1 document
    "Attribution": "store.document", "Calibration": "store.document", "Document": "store.document",
    "Metrics": "store.document", "PromptChange": "store.document", "SuiteEntry": "store.document",
    "Summary": "store.document", "PromptResult": "store.records", "Records": "store.records",
    "Levers": "store.verdicts", "Row": "store.verdicts", "SuiteVerdict": "store.verdicts",
    "parse_document": "store.schema", "read_document": "store.schema",
    # the error tree (safety/errors.py draws it)
    "CostgateError": "safety.errors", "ConfigError": "safety.errors", "PromptSetError": "safety.errors",
    "TemplateError": "safety.errors", "TokenizerError": "safety.errors", "BackendError": "safety.errors",
    "BaselineError": "safety.errors", "GitHubError": "safety.errors",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'pytest_costgate' has no attribute {name!r}")
    module, _, attr = where.partition(":")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # the same names, for type checkers and editors
    from .replay.backends import Backend, Completion, Prompt, Request
    from .safety.errors import (
        BackendError,
        BaselineError,
        ConfigError,
        CostgateError,
        GitHubError,
        PromptSetError,
        TemplateError,
        TokenizerError,
    )
    from .store.document import SCHEMA, Attribution, Calibration, Document, Metrics, PromptChange, SuiteEntry, Summary
    from .store.records import PromptResult, Records
    from .store.schema import parse_document, read_document
    from .store.stamp import VERSION as __version__
    from .store.verdicts import Levers, Row, SuiteVerdict
