"""The exception tree: every message names the object, the place and the fix, and is shown as one line, never as
a traceback. Foreign exceptions are wrapped `from exc` (or `from None`, where their text could hold a value).

    CostgateError             anything costgate reports to a user
    ├── ConfigError           costgate.yaml missing, malformed or inconsistent
    ├── PromptSetError        a prompt set file missing or a record bad
    ├── TemplateError         a Jinja2 template (prompt, chat or comment) failed to load or render
    ├── TokenizerError        an encoding or tokenizer could not be loaded
    ├── BackendError          a backend could not start, or a request failed for good
    ├── BaselineError         a costgate/1 document unreadable or of another schema
    └── GitHubError           the comment platform refused or failed a request
"""
from __future__ import annotations


class CostgateError(Exception):
    """Base of every error costgate reports to a user (never shown as a traceback)."""


class ConfigError(CostgateError):
    """costgate.yaml is missing, malformed or inconsistent."""


class PromptSetError(CostgateError):
    """A prompt set file is missing or has a bad record."""


class TemplateError(CostgateError):
    """A Jinja2 template failed to load or render."""


class TokenizerError(CostgateError):
    """An encoding or tokenizer could not be loaded."""


class BackendError(CostgateError):
    """A backend could not be created or a request failed for good."""


class BaselineError(CostgateError):
    """The baseline file is unreadable or of another schema."""


class GitHubError(CostgateError):
    """The GitHub API refused or failed a request."""
