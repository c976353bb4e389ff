"""Gate overhead: render + tokenize + price + compare of a tokens-only suite vs raw tiktoken encode.

Prints throughput of both on the same texts in one run and their ratio (goal >= 0.8).
Usage: python benchmarks/tokens_only.py [--prompts 100000] [--size 2000]
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from pytest_costgate.baseline import document
from pytest_costgate.config import load_config
from pytest_costgate.gate import prepare, run_suite
from pytest_costgate.tokens import load_counter

WORDS = ("refund order invoice shipping account password router update settings plan export data "
         "customer support ticket billing error crash install device network the a of to and is in it "
         "for on with as was at by 2026 #42 $19.99 café naïve 東京 🙂").split()


def build(folder: Path, prompts: int, size: int) -> Path:
    rng = random.Random(1)
    with open(folder / "prompts.jsonl", "w", encoding="utf-8") as out:
        for i in range(prompts):
            doc, length = [], 0
            while length < size:
                word = rng.choice(WORDS)
                doc.append(word)
                length += len(word) + 1
            out.write(json.dumps({"id": f"p{i}", "vars": {"doc": " ".join(doc), "tier": rng.choice(["free", "pro"])}}) + "\n")
    (folder / "t.j2").write_text("Summarize for a {{ tier }} customer:\n{{ doc }}\nSummary:")
    (folder / "costgate.yaml").write_text("""
models:
  m: {backend: python, function: "json:dumps", pricing: {input_per_1m: 2.5, output_per_1m: 10}}
suites:
  s:
    model: m
    prompts: prompts.jsonl
    template: t.j2
    tokens_only: true
    requests_per_month: 1000000
""")
    return folder / "costgate.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=2000, help="approximate characters per prompt")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(build(Path(tmp), args.prompts, args.size))
        spec = config.suites[0]
        counter = load_counter(spec.model.tokenizer)
        baseline = document(config, {"s": run_suite(config, spec, None, True)})  # also warms caches
        texts = prepare(spec).rendered
        encoding = counter.engine
        megabytes = sum(len(t.encode()) for t in texts) / 1e6

        start = time.perf_counter()
        raw = sum(len(encoding.encode(t)) for t in texts)
        raw_s = time.perf_counter() - start

        start = time.perf_counter()
        batch = sum(len(ids) for ids in encoding.encode_ordinary_batch(texts))
        batch_s = time.perf_counter() - start

        start = time.perf_counter()
        entry = run_suite(config, spec, baseline, True)
        gate_s = time.perf_counter() - start
        assert entry["metrics"]["input_tokens_total"] == raw == batch, "token counts disagree"
        assert entry["verdict"]["status"] == "pass"

    print(f"{args.prompts} prompts, {megabytes:.1f} MB rendered, {raw} tokens")
    print(f"raw tiktoken encode loop:          {args.prompts / raw_s:10.0f} prompts/s ({megabytes / raw_s:.1f} MB/s)")
    print(f"raw tiktoken encode_ordinary_batch:{args.prompts / batch_s:10.0f} prompts/s ({megabytes / batch_s:.1f} MB/s)")
    print(f"costgate tokens-only gate:         {args.prompts / gate_s:10.0f} prompts/s "
          "(load JSONL + render + tokenize + price + compare)")
    print(f"ratio gate / raw encode loop:  {raw_s / gate_s:.2f} (goal >= 0.8)")
    print(f"ratio gate / raw batch encode: {batch_s / gate_s:.2f}")


if __name__ == "__main__":
    main()
