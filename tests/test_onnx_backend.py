"""The onnx backend on the CPU provider against transformers' greedy outputs for the same weights."""
from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from pytest_costgate.config.specs import GpuPrice, ModelSpec, TokenizerSpec
from pytest_costgate.inputs.tokens import load_counter
from pytest_costgate.replay.backends import Request
from pytest_costgate.replay.backends.onnx import OnnxBackend
from pytest_costgate.replay.measure import replay
from pytest_costgate.safety.errors import BackendError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "onnx"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text())
EXPORTS = {  # folder: (architecture, cache mode)
    "gpt2-tiny": ("gpt2", "past"), "gpt2-tiny-nopast": ("gpt2", "recompute"),
    "llama-tiny": ("llama", "past"), "llama-tiny-nopast": ("llama", "recompute"),
    "llama-tiny-merged": ("llama", "merged"),
}


def backend(path: Path | str, **options) -> OnnxBackend:
    opts = {"path": str(path), "provider": "cpu", **options}
    spec = ModelSpec("tiny", "onnx", opts, TokenizerSpec(tokenizer_json=Path("unused")), None, "costgate.yaml:7", Path("."))
    return OnnxBackend(spec)


def requests(arch: str) -> list[Request]:
    return [Request(f"p{i}", prompt, {"max_new_tokens": REFERENCE["max_new_tokens"]})
            for i, prompt in enumerate(REFERENCE["outputs"][arch])]


@pytest.mark.parametrize("folder", list(EXPORTS))
@pytest.mark.parametrize("batch_size", [1, 3])
def test_outputs_equal_transformers_greedy(folder, batch_size):
    arch, mode = EXPORTS[folder]
    model = backend(FIXTURES / folder, batch_size=batch_size)
    assert model.layout.mode == mode
    reqs = requests(arch)
    outputs = []
    for i in range(0, len(reqs), batch_size):
        outputs += model.complete_batch(reqs[i:i + batch_size])
    for request, done in zip(reqs, outputs):
        assert done.error is None
        assert list(done.token_ids) == REFERENCE["outputs"][arch][request.prompt], request.prompt
        assert done.token_source == "engine" and done.output_tokens == len(done.token_ids)
        assert done.input_tokens == len(model.tokenizer.encode(request.prompt).ids)


def test_kv_layouts_are_read_from_the_model():
    gpt2, llama = backend(FIXTURES / "gpt2-tiny").layout, backend(FIXTURES / "llama-tiny").layout
    assert (gpt2.layers, gpt2.kv_heads, gpt2.head_size) == (2, 4, 8)  # multi-head: 4 kv heads
    assert (llama.layers, llama.kv_heads, llama.head_size) == (2, 2, 8)  # grouped-query: 2 kv heads for 4


def test_fingerprint_names_provider_runtime_and_model():
    import onnxruntime

    fp = backend(FIXTURES / "llama-tiny-merged").fingerprint()
    assert fp["provider"] == "cpu" and fp["onnxruntime"] == onnxruntime.__version__
    assert fp["model"] == "llama-tiny-merged/decoder_model_merged.onnx" and fp["kv"] == "merged 2x2x8 float32"


def test_stop_strings_and_eos(tmp_path):
    model = backend(FIXTURES / "llama-tiny")
    full = model.complete(Request("p", "Thanks", {"max_new_tokens": 12}))
    cut = full.text[len(full.text) // 2:][:2]
    stopped = model.complete(Request("p", "Thanks", {"max_new_tokens": 12, "stop": [cut]}))
    assert cut not in stopped.text and stopped.output_tokens < full.output_tokens
    # make the first generated token the eos: generation ends after one token
    folder = tmp_path / "m"
    shutil.copytree(FIXTURES / "llama-tiny", folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config["eos_token_id"] = full.token_ids[0]
    (folder / "generation_config.json").write_text(json.dumps(config))
    assert backend(folder).complete(Request("p", "Thanks", {"max_new_tokens": 12})).token_ids == full.token_ids[:1]


def test_batched_gpu_cost_uses_the_batch_wall_time():
    model = backend(FIXTURES / "gpt2-tiny", batch_size=4)
    counter = load_counter(TokenizerSpec(tokenizer_json=FIXTURES / "gpt2-tiny" / "tokenizer.json"))
    reqs = [(r, 1, Decimal(1)) for r in requests("gpt2")]
    results, wall_s = replay(model, reqs, counter, GpuPrice(Decimal(3600)))
    busy = {r.busy_ms for r in results}
    assert len(busy) == 1  # one batch, shared equally
    share = busy.pop()
    assert results[0].e2e_ms == pytest.approx(share * 4)
    assert results[0].cost == Decimal(3600) * Decimal(repr(share)) / 1000 / 3600
    assert share * 4 <= wall_s * 1000


@pytest.mark.parametrize("setup, message", [
    ("no_tokenizer", "has no tokenizer.json. Save it next to the model"),
    ("corrupt", "onnxruntime cannot load"),
    ("no_model", "no model.onnx or decoder_model_merged.onnx in"),
    ("no_logits", "not a causal-LM decoder export: expected an 'input_ids' input and a 'logits' output"),
])
def test_broken_exports_give_clear_errors(tmp_path, setup, message):
    folder = tmp_path / "m"
    shutil.copytree(FIXTURES / "gpt2-tiny", folder)
    if setup == "no_tokenizer":
        (folder / "tokenizer.json").unlink()
    elif setup == "corrupt":
        (folder / "model.onnx").write_bytes((folder / "model.onnx").read_bytes()[:5000])
    elif setup == "no_model":
        (folder / "model.onnx").unlink()
    else:
        import onnx

        model = onnx.load(str(folder / "model.onnx"))
        model.graph.output[0].name = "scores"
        for node in model.graph.node:
            node.output[:] = ["scores" if o == "logits" else o for o in node.output]
        onnx.save(model, str(folder / "model.onnx"))
    with pytest.raises(BackendError, match=message):
        backend(folder)


def test_cuda_without_a_gpu_is_an_error_not_a_silent_cpu_run():
    import onnxruntime

    probe = onnxruntime.InferenceSession(str(FIXTURES / "gpt2-tiny" / "model.onnx"),
                                         providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    if probe.get_providers()[0] == "CUDAExecutionProvider":
        pytest.skip("this machine has a working CUDA provider")  # the error path needs its absence
    with pytest.raises(BackendError, match="provider 'cuda' was asked for, but onnxruntime could not create"):
        backend(FIXTURES / "gpt2-tiny", provider="cuda")
    assert backend(FIXTURES / "gpt2-tiny", provider="auto").provider == "cpu"


def test_chat_prompts_are_refused_clearly():
    done = backend(FIXTURES / "gpt2-tiny").complete(Request("c", ({"role": "user", "content": "hi"},), {}))
    assert "the model has no chat template" in done.error


def test_prompt_longer_than_the_context_fails_alone():
    model = backend(FIXTURES / "gpt2-tiny", batch_size=2)
    long, short = model.complete_batch([Request("long", "word " * 1000, {"max_new_tokens": 4}),
                                        Request("short", "Thanks", {"max_new_tokens": 4})])
    assert "more than the model's 512 positions" in long.error
    assert short.error is None and short.output_tokens == 4


@pytest.mark.parametrize("folder", ["gpt2-tiny", "llama-tiny-merged"])
def test_iobinding_path_matches_too(folder):
    """The CUDA path's IOBinding loop (present OrtValues re-bound as past), run here on the CPU."""
    from pytest_costgate.replay.backends.onnx_decoder import GreedyDecoder

    arch, _ = EXPORTS[folder]
    model = backend(FIXTURES / folder)
    model.decoder = GreedyDecoder(model.session, model.layout, "cpu", iobinding=True)
    outputs = model.complete_batch(requests(arch))
    assert [list(o.token_ids) for o in outputs] == list(REFERENCE["outputs"][arch].values())


def test_cheaper_but_broken_candidate_is_failed_by_the_quality_guardrail(pytester):
    """Cutting max_new_tokens lowers the cost; the quality guardrail still fails the suite."""
    pytester.makefile(".jsonl", prompts="\n".join(json.dumps({"id": f"p{i}", "prompt": p})
                                                   for i, p in enumerate(REFERENCE["outputs"]["llama"])) + "\n")
    config = f"""
models:
  tiny:
    backend: onnx
    path: {FIXTURES / 'llama-tiny'}
    provider: cpu
    tokenizer: {{tokenizer_json: {FIXTURES / 'llama-tiny' / 'tokenizer.json'}}}
    pricing: {{usd_per_hour: 3.0, mode: configured, latency_s: 0.3, concurrency: 8}}
suites:
  answers:
    model: tiny
    prompts: prompts.jsonl
    params: {{max_new_tokens: MAX}}
    requests_per_month: 1000000
    quality: {{min_similarity: 0.8}}
"""
    gate = ["--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider"]
    pytester.makefile(".yaml", costgate=config.replace("MAX", "12"))
    pytester.runpytest(*gate, "--costgate-update-baseline").assert_outcomes(passed=1)
    pytester.runpytest(*gate).assert_outcomes(passed=1)  # same model, same outputs: similarity 1.0
    pytester.makefile(".yaml", costgate=config.replace("MAX", "4"))
    result = pytester.runpytest(*gate, "--costgate-report", "r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["quality_similarity*min 80%*fail",
                                 "note: quality compared with the baseline outputs of 4 prompts*"])
    rows = {r["metric"]: r for r in json.loads((pytester.path / "r.json").read_text())["suites"]["answers"]["verdict"]["rows"]}
    assert float(rows["quality_similarity"]["candidate"]) < 0.8
    assert rows["output_tokens_mean"]["delta"] == "-8"  # 12 -> 4 new tokens: it is cheaper
