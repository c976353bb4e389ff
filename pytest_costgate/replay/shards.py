"""Splitting a suite's prompts into shards and joining the parts again.

A prompt's shard follows from its id alone (a hash), so every worker and every CI matrix job agrees
without talking to the others, and a prompt stays in its shard when others are added. Parts are
joined only when they are complete, disjoint and from one config and commit.
"""
from __future__ import annotations

import hashlib
import re

from ..safety.errors import CostgateError

_SHARD = re.compile(r"^\s*([0-9]{1,4})\s*/\s*([0-9]{1,4})\s*$")


def shard_of(prompt_id: str, shards: int) -> int:
    """The 1-based shard a prompt belongs to, stable across runs and machines."""
    digest = hashlib.sha256(prompt_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % shards + 1


def parse_shard(text: str) -> tuple[int, int]:
    """'2/8' -> (2, 8); anything else is a CostgateError saying the form."""
    match = _SHARD.match(text or "")
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)) <= 1024:
        raise CostgateError(f"--costgate-shard {text!r}: expected K/N with 1 <= K <= N <= 1024, e.g. 2/8.")
    return int(match.group(1)), int(match.group(2))


