"""GPU readiness of the onnx backend, unattended in well under 5 minutes.

Checks, on every ONNX fixture (GPT-2 and Llama, separate and merged decoders):
  1. the CUDA provider is created when asked for (provider: cuda fails loudly instead of running on the CPU),
  2. the IOBinding path is the one used (the KV cache stays on the device),
  3. greedy outputs on CUDA equal the CPU run's, token for token, at batch 1 and 8 (with TF32 off, the
     backend's default; --tf32 shows what TF32 matmuls do to them),
then measures tokens/s at batch 1, 4 and 16 (the ratio to batch 1 shows how batching pays) and prints the
fingerprint a report would record (device name, memory, driver).

Usage: python benchmarks/gpu_check.py [--rounds 3] [--new-tokens 32] [--cpu-dry-run]
Exit status: 0 every check passed, 1 a check failed, 2 no CUDA provider in this onnxruntime.
--cpu-dry-run runs the same steps with the CPU standing in for the GPU (to test the script itself).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytest_costgate.config.specs import ModelSpec, TokenizerSpec
from pytest_costgate.replay.backends import Request  # noqa: E402
from pytest_costgate.replay.backends.onnx import OnnxBackend
from pytest_costgate.replay.backends.ort import import_onnxruntime  # noqa: E402
from pytest_costgate.safety.errors import BackendError  # noqa: E402

MODELS = ["llama-tiny", "llama-tiny-merged", "gpt2-tiny", "llama-tiny-nopast", "gpt2-tiny-nopast"]
PROMPTS = [f"Customer {i}: how do I reset my password? My invoice shows a double charge for order A-{1000 + i}."
           + " Please help." * (i % 5) for i in range(48)]


def backend(model: str, provider: str, batch: int, tf32: bool = False) -> OnnxBackend:
    folder = ROOT / "fixtures" / "onnx" / model
    options = {"path": str(folder), "provider": provider, "batch_size": batch}
    if provider == "cuda" and tf32:
        options["provider_options"] = {"use_tf32": "1"}
    spec = ModelSpec("gpu-check", "onnx", options,
                     TokenizerSpec(tokenizer_json=folder / "tokenizer.json"), None, "gpu_check", ROOT)
    return OnnxBackend(spec)


def replay(b: OnnxBackend, prompts: list[str], new_tokens: int) -> tuple[list[tuple[int, ...]], int, float]:
    params = {"max_new_tokens": new_tokens}
    requests = [Request(str(i), p, params) for i, p in enumerate(prompts)]
    ids: list[tuple[int, ...]] = []
    started = time.perf_counter()
    for i in range(0, len(requests), b.batch_size):
        for done in b.complete_batch(requests[i:i + b.batch_size]):
            if done.error:
                raise RuntimeError(done.error)
            ids.append(tuple(done.token_ids or ()))
    return ids, sum(map(len, ids)), time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--cpu-dry-run", action="store_true")
    parser.add_argument("--tf32", action="store_true", help="let the CUDA provider use TF32 matmuls")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    ort = import_onnxruntime("gpu_check")
    ort.set_default_logger_severity(3)  # the CUDA provider's Memcpy-node notices are not findings
    gpu = "cpu" if args.cpu_dry_run else "cuda"
    print(f"onnxruntime {ort.__version__}, providers: {', '.join(ort.get_available_providers())}")
    if not args.cpu_dry_run and "CUDAExecutionProvider" not in ort.get_available_providers():
        print("no CUDAExecutionProvider in this onnxruntime: install onnxruntime-gpu (and CUDA 12/13 + cuDNN) "
              "on a GPU machine. Nothing checked.")
        return 2
    failures: list[str] = []
    figures: dict[str, object] = {"onnxruntime": ort.__version__}
    for model in MODELS:
        try:
            on_gpu = backend(model, gpu, 8, args.tf32)
        except BackendError as exc:
            failures.append(f"{model}: {exc}")
            print(f"FAIL {model}: {exc}")
            continue
        used = on_gpu.session.get_providers()[0]
        binding = on_gpu.decoder.iobinding
        ok = (used == "CUDAExecutionProvider" and binding) or args.cpu_dry_run
        print(f"{'ok  ' if ok else 'FAIL'} {model}: session on {used}, IOBinding {'on' if binding else 'off'}, "
              f"layout {on_gpu.layout.mode}")
        if not ok:
            failures.append(f"{model}: ran on {used} / IOBinding {binding}")
        for batch in (1, 8):
            on_gpu.batch_size = batch
            on_cpu = backend(model, "cpu", batch)
            cuda_ids, _, _ = replay(on_gpu, PROMPTS[:16], args.new_tokens)
            cpu_ids, _, _ = replay(on_cpu, PROMPTS[:16], args.new_tokens)
            same = sum(a == b for a, b in zip(cuda_ids, cpu_ids))
            print(f"{'ok  ' if same == len(cpu_ids) else 'FAIL'} {model}: batch {batch}: greedy outputs equal the "
                  f"CPU's on {same}/{len(cpu_ids)} prompts")
            if same != len(cpu_ids):
                failures.append(f"{model}: batch {batch}: {len(cpu_ids) - same} prompts differ from the CPU run")
        if model == MODELS[0]:
            figures["fingerprint"] = on_gpu.fingerprint()
    print("\nthroughput (llama-tiny, 48 prompts, median of rounds; tiny models are launch-bound on a GPU):")
    rates: dict[int, float] = {}
    for batch in (1, 4, 16):
        b = backend("llama-tiny", gpu, batch, args.tf32)
        replay(b, PROMPTS[:batch], 4)  # warm-up: kernels, allocator
        runs = []
        for _ in range(args.rounds):
            _, tokens, seconds = replay(b, PROMPTS, args.new_tokens)
            runs.append(tokens / seconds)
        rates[batch] = statistics.median(runs)
        print(f"  batch {batch:2d}: {rates[batch]:10,.0f} tokens/s  ({rates[batch] / rates[1]:.2f}x batch 1)")
    figures["tokens_per_s"] = rates
    print("\nfingerprint:", json.dumps(figures.get("fingerprint"), indent=None))
    if args.json:
        args.json.write_text(json.dumps({**figures, "failures": failures}, indent=2))
    print("\n" + ("every check passed" if not failures else f"{len(failures)} check(s) failed:\n  " +
                  "\n  ".join(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
