"""ONNX replay speed: the onnx backend vs a minimal hand-written ONNX Runtime greedy loop.

Same model, same prompts, same provider; rounds interleaved and the median taken, so drift hits
both. Prints tokens/s, the ratio (goal >= 0.95), and batch scaling at batch 1, 4 and 16.
Usage: python benchmarks/onnx_replay.py [--model fixtures/onnx/llama-tiny] [--provider auto] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from pytest_costgate.backends import Request
from pytest_costgate.backends.onnx import OnnxBackend
from pytest_costgate.config import ModelSpec, TokenizerSpec

PROMPTS = [f"Customer {i}: how do I reset my password? My invoice shows a double charge for order A-{1000 + i}."
           for i in range(32)]


def minimal_loop(session, prompts: list[list[int]], max_new: int) -> int:
    """The textbook loop: session.run with numpy feeds, present fed back as past, batch 1."""
    inputs = {i.name: i for i in session.get_inputs()}
    past_names = [n for n in inputs if n.startswith("past_key_values.")]
    generated = 0
    for prompt in prompts:
        ids = np.array([prompt], dtype=np.int64)
        mask = np.ones_like(ids)
        feed_past = {n: np.zeros((1, inputs[n].shape[1], 0, inputs[n].shape[3]), dtype=np.float32) for n in past_names}
        position = np.arange(len(prompt), dtype=np.int64)[None, :]
        for _ in range(max_new):
            feed = {"input_ids": ids, "attention_mask": mask, "position_ids": position, **feed_past}
            outputs = session.run(None, {k: v for k, v in feed.items() if k in inputs})
            token = int(outputs[0][0, -1].argmax())
            generated += 1
            feed_past = {n: v for n, v in zip(past_names, outputs[1:])}
            ids = np.array([[token]], dtype=np.int64)
            mask = np.concatenate([mask, [[1]]], axis=1)
            position = position[:, -1:] + 1
    return generated


def backend(model: str, provider: str, batch: int) -> OnnxBackend:
    spec = ModelSpec("bench", "onnx", {"path": model, "provider": provider, "batch_size": batch},
                     TokenizerSpec(tokenizer_json=Path(model) / "tokenizer.json"), None, "benchmark", Path("."))
    return OnnxBackend(spec)


def replay(b: OnnxBackend, max_new: int) -> int:
    params = {"max_new_tokens": max_new}
    requests = [Request(str(i), p, params) for i, p in enumerate(PROMPTS)]
    tokens = 0
    for i in range(0, len(requests), b.batch_size):
        tokens += sum(c.output_tokens or 0 for c in b.complete_batch(requests[i:i + b.batch_size]))
    return tokens


def timed(fn) -> tuple[float, int]:
    start = time.perf_counter()
    tokens = fn()
    return time.perf_counter() - start, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="fixtures/onnx/llama-tiny")
    parser.add_argument("--provider", default="auto", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-new", type=int, default=32)
    args = parser.parse_args()
    # The eos token of a random-weight model could end sequences early; these prompts don't hit it.
    single = backend(args.model, args.provider, 1)
    prompts = [single.tokenizer.encode(p).ids for p in PROMPTS]
    ours, theirs = [], []
    replay(single, args.max_new), minimal_loop(single.session, prompts[:2], args.max_new)  # warm up
    for _ in range(args.rounds):
        seconds, tokens = timed(lambda: replay(single, args.max_new))
        ours.append(tokens / seconds)
        seconds, tokens = timed(lambda: minimal_loop(single.session, prompts, args.max_new))
        theirs.append(tokens / seconds)
    fp = single.fingerprint()
    print(f"model {fp['model']} ({fp['kv']}), provider {fp['provider']}, device {fp['device']}, "
          f"onnxruntime {fp['onnxruntime']}; {len(PROMPTS)} prompts x {args.max_new} new tokens, "
          f"median of {args.rounds} interleaved rounds")
    print(f"costgate onnx backend, batch 1: {statistics.median(ours):9.0f} tokens/s")
    print(f"minimal onnxruntime loop:       {statistics.median(theirs):9.0f} tokens/s")
    print(f"ratio backend / minimal loop: {statistics.median(ours) / statistics.median(theirs):.2f} (goal >= 0.95)")
    for batch in (1, 4, 16):
        b = backend(args.model, args.provider, batch)
        replay(b, args.max_new)
        rates = []
        for _ in range(args.rounds):
            seconds, tokens = timed(lambda: replay(b, args.max_new))
            rates.append(tokens / seconds)
        print(f"batch {batch:2d}: {statistics.median(rates):9.0f} tokens/s")


if __name__ == "__main__":
    main()
