"""API replay throughput: `concurrency: 16` vs `concurrency: 1` against a loopback OpenAI-compatible server
that takes 50 ms per request (goal: >= 12x, same token counts).

Usage: python benchmarks/concurrency.py [--prompts 200] [--delay 0.05] [--concurrency 16]
"""
from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from openai_server import FakeOpenAI  # noqa: E402 - the loopback server the tests use

from pytest_costgate.config.specs import ModelSpec, TokenizerSpec, TokenPrice
from pytest_costgate.inputs.tokens import load_counter  # noqa: E402
from pytest_costgate.replay.backends import Request  # noqa: E402
from pytest_costgate.replay.backends.openai import OpenAIBackend  # noqa: E402
from pytest_costgate.replay.measure import replay  # noqa: E402


def run(url: str, prompts: int, concurrency: int) -> tuple[float, list[tuple[str, int, int]]]:
    spec = ModelSpec("m", "openai", {"base_url": url, "concurrency": concurrency}, TokenizerSpec("cl100k_base"),
                     None, "benchmark", Path("."))
    backend = OpenAIBackend(spec)
    requests = [(Request(f"p{i}", f"where is my parcel number {i} and when does it arrive", {"max_tokens": 8}), 12,
                 Decimal(1)) for i in range(prompts)]
    results, wall = replay(backend, requests, load_counter(TokenizerSpec("cl100k_base")), TokenPrice(Decimal(1), Decimal(2)))
    backend.close()
    assert all(r.error is None for r in results), [r.error for r in results if r.error][:3]
    return prompts / wall, [(r.id, r.input_tokens or 0, r.output_tokens or 0) for r in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds the server takes per request")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    server = FakeOpenAI(delay_s=args.delay)
    try:
        serial, serial_tokens = run(server.url, args.prompts, 1)
        parallel, parallel_tokens = run(server.url, args.prompts, args.concurrency)
    finally:
        server.close()
    assert serial_tokens == parallel_tokens, "token counts differ between the two runs"
    print(f"{args.prompts} prompts, loopback server taking {args.delay * 1000:.0f} ms per request")
    print(f"concurrency 1:  {serial:7.1f} requests/s")
    print(f"concurrency {args.concurrency}: {parallel:7.1f} requests/s")
    print(f"ratio: {parallel / serial:.1f}x (goal >= 12x); token counts identical: {serial_tokens == parallel_tokens}")


if __name__ == "__main__":
    main()
