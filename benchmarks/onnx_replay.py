"""ONNX replay speed: the onnx backend vs onnxruntime-genai (its best usage) and a minimal hand-written loop.

Same model, same prompts, same provider, one intra-op thread each; rounds interleaved and the median
taken, so drift hits every contender alike. Prints tokens/s and the ratios costgate / genai and
costgate / minimal loop at batch 1 and 8 (goals: >= 1.0), then batch scaling at 1, 4 and 16.

genai's best usage: at batch 1 one generator reused for every prompt (rewind_to(0)); at batch 8 one
generator per batch, right-padded (what its encode_batch does). The genai column is skipped, with a
line saying so, when onnxruntime-genai isn't installed.

Usage: python benchmarks/onnx_replay.py [--model fixtures/onnx/llama-tiny] [--provider auto] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytest_costgate.config.specs import ModelSpec, TokenizerSpec
from pytest_costgate.replay.backends import Request  # noqa: E402
from pytest_costgate.replay.backends.onnx import OnnxBackend  # noqa: E402

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


def backend(model: str, provider: str, batch: int, threads: int = 1) -> OnnxBackend:
    spec = ModelSpec("bench", "onnx", {"path": model, "provider": provider, "batch_size": batch, "threads": threads},
                     TokenizerSpec(tokenizer_json=Path(model) / "tokenizer.json"), None, "benchmark", Path("."))
    return OnnxBackend(spec)


def replay(b: OnnxBackend, max_new: int) -> int:
    params = {"max_new_tokens": max_new}
    requests = [Request(str(i), p, params) for i, p in enumerate(PROMPTS)]
    tokens = 0
    for i in range(0, len(requests), b.batch_size):
        tokens += sum(c.output_tokens or 0 for c in b.complete_batch(requests[i:i + b.batch_size]))
    return tokens


class Genai:
    """onnxruntime-genai used as its examples use it, at its best for the batch size."""

    def __init__(self, folder: Path, provider: str) -> None:
        import onnxruntime_genai as og

        self.og = og
        config = og.Config(str(folder))
        config.clear_providers()
        if provider == "cuda" or (provider == "auto" and og.is_cuda_available()):
            config.append_provider("cuda")
        config.overlay('{"model": {"decoder": {"session_options": {"intra_op_num_threads": 1}}}}')
        self.model = og.Model(config)
        self.tokenizer = og.Tokenizer(self.model)
        self.reused = None

    def batch1(self, prompts: list[list[int]], max_new: int) -> int:
        og = self.og
        if self.reused is None:
            params = og.GeneratorParams(self.model)
            params.set_search_options(do_sample=False, batch_size=1, max_length=512)
            self.reused = og.Generator(self.model, params)
        generator, tokens = self.reused, 0
        for prompt in prompts:
            generator.rewind_to(0)
            generator.append_tokens(np.asarray(prompt, dtype=np.int32))
            for _ in range(max_new):
                generator.generate_next_token()
                tokens += 1
        return tokens

    def batched(self, prompts: list[list[int]], max_new: int, batch: int) -> int:
        og, tokens = self.og, 0
        for i in range(0, len(prompts), batch):
            group = prompts[i:i + batch]
            width = max(map(len, group))
            ids = np.zeros((len(group), width), dtype=np.int32)
            for row, p in enumerate(group):
                ids[row, :len(p)] = p
            params = og.GeneratorParams(self.model)
            params.set_search_options(do_sample=False, batch_size=len(group), max_length=width + max_new)
            generator = og.Generator(self.model, params)
            generator.append_tokens(ids)
            while not generator.is_done():
                generator.generate_next_token()
                tokens += len(group)
        return tokens


def timed(fn) -> float:
    start = time.perf_counter()
    tokens = fn()
    return tokens / (time.perf_counter() - start)


def genai_folder(model: str) -> Path | None:
    """The genai twin of an export: the same folder when it has genai_config.json, else '<folder>-genai'."""
    for folder in (Path(model), Path(str(Path(model)) + "-genai")):
        if (folder / "genai_config.json").is_file():
            return folder
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "fixtures" / "onnx" / "llama-tiny"))
    parser.add_argument("--provider", default="auto", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-new", type=int, default=32)
    args = parser.parse_args()
    # The eos token of a random-weight model could end sequences early; these prompts don't hit it (checked:
    # every contender generates len(PROMPTS) * max_new tokens).
    ours = {1: backend(args.model, args.provider, 1), 8: backend(args.model, args.provider, 8)}
    prompts = [ours[1].tokenizer.encode(p).ids for p in PROMPTS]
    genai = None
    folder = genai_folder(args.model)
    try:
        genai = Genai(folder, args.provider) if folder is not None else None
    except ImportError:
        print("onnxruntime-genai is not installed: the genai column is skipped (pip install --no-deps "
              "onnxruntime-genai)")
    if folder is None:
        print(f"no genai folder for {args.model} (genai_config.json): the genai column is skipped")
    contenders = {
        "costgate b1": lambda: replay(ours[1], args.max_new),
        "costgate b8": lambda: replay(ours[8], args.max_new),
        "minimal loop b1": lambda: minimal_loop(ours[1].session, prompts, args.max_new),
    }
    if genai is not None:
        contenders["genai b1"] = lambda: genai.batch1(prompts, args.max_new)
        contenders["genai b8"] = lambda: genai.batched(prompts, args.max_new, 8)
    expected = len(PROMPTS) * args.max_new
    for name, run in contenders.items():  # warm up, and check every contender does the same work
        done = run()
        assert done == expected, f"{name} generated {done} tokens, expected {expected}"
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, run in contenders.items():
            rates[name].append(timed(run))
    median = {name: statistics.median(values) for name, values in rates.items()}
    fp = ours[1].fingerprint()
    print(f"model {fp['model']} ({fp['kv']}), provider {fp['provider']}, device {fp['device']}, onnxruntime "
          f"{fp['onnxruntime']}{', onnxruntime-genai ' + genai.og.__version__ if genai else ''}; {len(PROMPTS)} "
          f"prompts x {args.max_new} new tokens, 1 intra-op thread, median of {args.rounds} interleaved rounds")
    for name, value in median.items():
        print(f"  {name:16s} {value:10,.0f} tokens/s")
    print(f"ratio costgate / minimal loop, batch 1: {median['costgate b1'] / median['minimal loop b1']:.3f} "
          "(goal >= 1.0)")
    if genai is not None:
        for batch in (1, 8):
            print(f"ratio costgate / genai, batch {batch}: {median[f'costgate b{batch}'] / median[f'genai b{batch}']:.3f}"
                  " (goal >= 1.0)")
    for batch in (1, 4, 16):
        b = backend(args.model, args.provider, batch)
        replay(b, args.max_new)
        value = statistics.median(timed(lambda b=b: replay(b, args.max_new)) for _ in range(args.rounds))
        print(f"batch {batch:2d}: {value:10,.0f} tokens/s")


if __name__ == "__main__":
    main()
