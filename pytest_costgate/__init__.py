"""pytest-costgate: a cost-regression gate for LLM and ML inference."""
from __future__ import annotations

__version__ = "0.1.0"
SCHEMA = "costgate/1"
