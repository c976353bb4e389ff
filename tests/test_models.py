"""Models as users ship them: onnxruntime-genai folders, quantized and fp16 exports, the model's own chat template."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pytest_costgate.config.specs import ModelSpec, TokenizerSpec
from pytest_costgate.inputs.chat_format import ChatFormat, load_chat_format
from pytest_costgate.inputs.tokens import load_counter
from pytest_costgate.replay.backends import Request
from pytest_costgate.replay.backends.onnx import OnnxBackend
from pytest_costgate.safety.errors import BackendError, TemplateError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "onnx"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text())
LLAMA = REFERENCE["outputs"]["llama"]  # transformers' greedy generate() on the same weights
CHAT = json.loads((FIXTURES / "llama-tiny-chat" / "chat_reference.json").read_text())
GATE = ["--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider"]


def spec(backend: str, path: Path | str, **options) -> ModelSpec:
    return ModelSpec("m", backend, {"path": str(path), "provider": "cpu", **options},
                     TokenizerSpec(tokenizer_json=Path(path) / "tokenizer.json"), None, "costgate.yaml:7", Path("."))


def run_all(model, prompts, batch: int, params=None) -> list:
    reqs = [Request(f"p{i}", p, params or {"max_new_tokens": REFERENCE["max_new_tokens"]}) for i, p in enumerate(prompts)]
    out = []
    for i in range(0, len(reqs), batch):
        out += model.complete_batch(reqs[i:i + batch])
    return out


# ---- onnxruntime-genai ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("batch", [1, 3, 4])
def test_genai_folder_replays_to_transformers_and_the_onnx_backend(batch):
    from pytest_costgate.replay.backends.genai import GenaiBackend

    genai = GenaiBackend(spec("genai", FIXTURES / "llama-tiny-genai", batch_size=batch))
    onnx = OnnxBackend(spec("onnx", FIXTURES / "llama-tiny", batch_size=batch))
    prompts = list(LLAMA)
    for done, mine, prompt in zip(run_all(genai, prompts, batch), run_all(onnx, prompts, batch), prompts):
        assert done.error is None
        assert list(done.token_ids) == LLAMA[prompt] == list(mine.token_ids), prompt
        assert done.output_tokens == len(done.token_ids) and done.input_tokens == mine.input_tokens
        assert done.token_source == "engine" and done.e2e_ms > 0
    fingerprint = genai.fingerprint()
    assert fingerprint["backend"] == "genai" and fingerprint["provider"] == "cpu" and fingerprint["onnxruntime_genai"]


def test_genai_backend_refuses_a_folder_that_is_not_genai(tmp_path):
    from pytest_costgate.replay.backends.genai import GenaiBackend

    with pytest.raises(BackendError, match="no genai_config.json; it is not an onnxruntime-genai model folder"):
        GenaiBackend(spec("genai", FIXTURES / "llama-tiny"))
    folder = tmp_path / "g"
    shutil.copytree(FIXTURES / "llama-tiny-genai", folder)
    (folder / "tokenizer_config.json").unlink()
    with pytest.raises(BackendError, match="tokenizer_config.json"):
        GenaiBackend(spec("genai", folder))


def test_genai_suite_runs_in_the_gate(pytester):
    pytester.makefile(".jsonl", prompts="".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n"
                                                for i, p in enumerate(LLAMA)))
    pytester.makefile(".yaml", costgate=f"""models:
  local: {{backend: genai, path: "{FIXTURES / 'llama-tiny-genai'}", batch_size: 2, provider: cpu,
          tokenizer: {{tokenizer_json: "{FIXTURES / 'llama-tiny-genai' / 'tokenizer.json'}"}}}}
suites:
  s: {{model: local, prompts: prompts.jsonl, params: {{max_new_tokens: 12}}}}
""")
    result = pytester.runpytest(*GATE, "--costgate-report", "r.json")
    assert result.ret == 0, result.stdout.str()
    entry = json.loads((pytester.path / "r.json").read_text())["suites"]["s"]
    assert entry["fingerprint"]["backend"] == "genai"
    assert entry["metrics"]["output_tokens_total"] == sum(len(v) for v in LLAMA.values())


# ---- quantized and half-precision variants ------------------------------------------------------------------------

@pytest.mark.parametrize("batch", [1, 4])
def test_fp16_variant_loads_and_replays(batch):
    model = OnnxBackend(spec("onnx", FIXTURES / "llama-tiny-fp16", batch_size=batch))
    assert model.layout.dtype.__name__ == "float32"  # keep_io_types: float32 past and logits around fp16 weights
    outputs = run_all(model, list(LLAMA), batch)
    assert all(o.error is None for o in outputs)
    # On these fixtures fp16 keeps every greedy token (a top-2 margin of 0.001 could flip one: the quality rule,
    # not a parity test, is where such a change belongs).
    assert [list(o.token_ids) for o in outputs] == list(LLAMA.values())


@pytest.mark.parametrize("batch", [1, 4])
def test_int8_variant_loads_and_replays_and_differs(batch):
    model = OnnxBackend(spec("onnx", FIXTURES / "llama-tiny-int8", batch_size=batch))
    outputs = run_all(model, list(LLAMA), batch)
    assert all(o.error is None and o.output_tokens for o in outputs)
    assert model.fingerprint()["model_sha256"] != OnnxBackend(spec("onnx", FIXTURES / "llama-tiny")).fingerprint()["model_sha256"]
    assert [list(o.token_ids) for o in outputs] != list(LLAMA.values())  # random weights x8: int8 changes answers


def test_switching_to_int8_is_caught_by_the_quality_guardrail(pytester):
    """What a PR that swaps the model for its int8 export sees: the model hash changes, and the outputs'
    agreement with the fp32 baseline's fails the quality rule."""
    pytester.makefile(".jsonl", prompts="".join(json.dumps({"id": f"p{i}", "prompt": p}) + "\n"
                                                for i, p in enumerate(LLAMA)))
    config = f"""models:
  local: {{backend: onnx, path: "{FIXTURES / 'llama-tiny'}", provider: cpu,
          tokenizer: {{tokenizer_json: "{FIXTURES / 'llama-tiny' / 'tokenizer.json'}"}},
          pricing: {{usd_per_hour: 3.0, mode: configured, latency_s: 0.3, concurrency: 8}}}}
suites:
  s:
    model: local
    prompts: prompts.jsonl
    params: {{max_new_tokens: 12}}
    requests_per_month: 1000000
    quality: {{min_exact_match: 0.9}}
"""
    pytester.makefile(".yaml", costgate=config)
    assert pytester.runpytest(*GATE, "--costgate-update-baseline").ret == 0
    pytester.makefile(".yaml", costgate=config.replace('llama-tiny"', 'llama-tiny-int8"'))
    result = pytester.runpytest(*GATE, "--costgate-report", "r.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*quality_exact_match*min 90%*fail*"])
    report = json.loads((pytester.path / "r.json").read_text())["suites"]["s"]
    notes = " ".join(report["verdict"]["notes"])
    assert "quality compared with the baseline outputs of 4 prompts: exact match 0.0%" in notes


# ---- the model's own chat template ----------------------------------------------------------------------------

def test_chat_template_ids_equal_transformers_apply_chat_template():
    chat = load_chat_format(FIXTURES / "llama-tiny-chat")
    assert chat is not None
    counter = load_counter(TokenizerSpec(tokenizer_json=FIXTURES / "llama-tiny-chat" / "tokenizer.json"))
    tokenizer = counter.engine
    assert any("tools" in case for case in CHAT["conversations"])
    for case in CHAT["conversations"]:  # the tool definitions too, where the template writes them
        text = chat.render(case["messages"], tools=case.get("tools"))
        assert text == case["text"]
        assert tokenizer.encode(text, add_special_tokens=False).ids == case["ids"]
        # what a server applying it bills
        assert counter.count_messages(case["messages"], case.get("tools")) == len(case["ids"])


def test_onnx_and_genai_replay_chat_prompts_with_the_model_template(tmp_path):
    from pytest_costgate.replay.backends.genai import GenaiBackend

    onnx = OnnxBackend(spec("onnx", FIXTURES / "llama-tiny-chat"))
    cases = [c for c in CHAT["conversations"] if "tools" not in c]  # a local model is sent no tool definitions
    conversations = [tuple(c["messages"]) for c in cases]
    for done, case in zip(run_all(onnx, conversations, 1), cases):
        assert done.error is None and done.input_tokens == len(case["ids"]) and done.output_tokens
    assert "chat_template" in onnx.fingerprint()
    folder = tmp_path / "genai"  # the same template, beside a genai model
    shutil.copytree(FIXTURES / "llama-tiny-genai", folder)
    shutil.copy(FIXTURES / "llama-tiny-chat" / "tokenizer_config.json", folder / "tokenizer_config.json")
    genai = GenaiBackend(spec("genai", folder))
    for done, case in zip(run_all(genai, conversations, 1), cases):
        assert done.error is None and done.input_tokens == len(case["ids"])


def test_explicit_chat_template_file_and_its_errors(tmp_path):
    template = tmp_path / "chat.jinja"
    template.write_text("{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tools here') }}"
                        "{% endif %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant]"
                        "{% endif %}")
    onnx = OnnxBackend(spec("onnx", FIXTURES / "llama-tiny", chat_template=str(template)))
    done = onnx.complete(Request("ok", ({"role": "user", "content": "hi"},), {"max_new_tokens": 2}))
    assert done.error is None and done.input_tokens == len(onnx.tokenizer.encode("[user] hi\n[assistant]",
                                                                                   add_special_tokens=False).ids)
    refused = onnx.complete(Request("t", ({"role": "tool", "content": "x"},), {"max_new_tokens": 2}))
    assert "the chat template refused prompt 't': no tools here" in refused.error
    plain = OnnxBackend(spec("onnx", FIXTURES / "llama-tiny"))
    missing = plain.complete(Request("c", ({"role": "user", "content": "hi"},), {}))
    assert "has no chat template" in missing.error and "chat_template: FILE" in missing.error


def test_a_hostile_chat_template_is_sandboxed_and_time_limited(monkeypatch):
    monkeypatch.setenv("COSTGATE_RENDER_TIMEOUT_S", "0.5")
    escape = ChatFormat("{{ ''.__class__.__mro__[1].__subclasses__() }}", {}, "evil/tokenizer_config.json")
    with pytest.raises(TemplateError, match="evil/tokenizer_config.json: the chat template failed"):
        escape.render([{"role": "user", "content": "x"}])
    bomb = ChatFormat("{{ 'x' * 10**9 }}", {}, "evil")
    with pytest.raises(TemplateError):
        bomb.render([{"role": "user", "content": "x"}])
    slow = ChatFormat("{% for i in range(90000) %}{% for j in range(90000) %}{% endfor %}{% endfor %}", {}, "evil")
    with pytest.raises(TemplateError, match="took over 0.5s"):
        slow.render([{"role": "user", "content": "x"}])
    with pytest.raises(TemplateError, match="syntax error"):
        ChatFormat("{% for %}", {}, "evil")


def test_openai_model_counts_chats_with_its_tokenizer_folder_template(tmp_path):
    """A transformers-serve endpoint applies the chat template: counting with the model's tokenizer folder gives
    the input tokens it bills, not OpenAI's per-message accounting."""
    with_template = load_counter(TokenizerSpec(tokenizer_json=FIXTURES / "llama-tiny-chat" / "tokenizer.json"))
    without = load_counter(TokenizerSpec(tokenizer_json=FIXTURES / "llama-tiny" / "tokenizer.json"))
    messages = CHAT["conversations"][1]["messages"]
    assert with_template.count_messages(messages) == len(CHAT["conversations"][1]["ids"])
    assert without.count_messages(messages) != with_template.count_messages(messages)
    assert "+chat:" in with_template.name and "+chat:" not in without.name


# ---- the greedy choice in the graph -----------------------------------------------------------------------------

@pytest.mark.parametrize("folder", ["llama-tiny", "llama-tiny-merged", "gpt2-tiny", "llama-tiny-nopast", "llama-tiny-fp16"])
def test_argmax_in_the_graph_gives_the_same_tokens(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("COSTGATE_CACHE_DIR", str(tmp_path / "cache"))
    arch = "gpt2" if folder.startswith("gpt2") else "llama"
    prompts = list(REFERENCE["outputs"][arch])
    edited = OnnxBackend(spec("onnx", FIXTURES / folder, batch_size=3))
    plain = OnnxBackend(spec("onnx", FIXTURES / folder, batch_size=3, argmax=False))
    assert edited.decoder.argmax and not plain.decoder.argmax
    assert [o.name for o in edited.session.get_outputs()][-1] == "costgate_next_token"
    assert not (tmp_path / "cache").exists()  # edited in memory: no file to plant or to trust by name
    ours, theirs = run_all(edited, prompts, 3), run_all(plain, prompts, 3)
    assert [o.token_ids for o in ours] == [o.token_ids for o in theirs]
    if not folder.endswith("fp16"):
        assert [list(o.token_ids) for o in ours] == list(REFERENCE["outputs"][arch].values())


def test_the_byte_edit_is_the_graph_onnx_would_make():
    import onnx
    from onnx import TensorProto, helper

    from pytest_costgate.replay.backends.onnx_argmax import edit

    for name in ("llama-tiny", "gpt2-tiny", "llama-tiny-merged"):
        source = (FIXTURES / name / ("decoder_model_merged.onnx" if name.endswith("merged") else "model.onnx"))
        data = source.read_bytes()
        proto = onnx.load_from_string(data)
        graph = proto.graph
        graph.initializer.append(helper.make_tensor("costgate_last_position", TensorProto.INT64, [], [-1]))
        graph.node.append(helper.make_node("Gather", ["logits", "costgate_last_position"], ["costgate_last_logits"],
                                           axis=1, name="costgate_last"))
        graph.node.append(helper.make_node("ArgMax", ["costgate_last_logits"], ["costgate_next_token"], axis=-1,
                                           keepdims=0, name="costgate_argmax"))
        graph.output.append(helper.make_tensor_value_info("costgate_next_token", TensorProto.INT64, ["batch_size"]))
        assert onnx.load_from_string(edit(data)) == proto
        assert edit(edit(data)) is None  # never twice
    assert edit(b"\x08garbage") is None and edit(b"") is None


def test_argmax_edit_falls_back_to_the_export_as_is(tmp_path, monkeypatch):
    from pytest_costgate.replay.backends.onnx_argmax import with_argmax

    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("COSTGATE_CACHE_DIR", str(blocked))  # no cache is needed any more: the edit is in memory
    model = OnnxBackend(spec("onnx", FIXTURES / "llama-tiny"))
    assert model.decoder.argmax and run_all(model, ["Thanks"], 1)[0].error is None
    folder = tmp_path / "external"
    shutil.copytree(FIXTURES / "llama-tiny", folder)
    (folder / "model.onnx_data").write_bytes(b"")  # weights beside the graph: left as exported
    monkeypatch.setenv("COSTGATE_CACHE_DIR", str(tmp_path / "cache"))
    assert with_argmax(folder / "model.onnx") is None
    (folder / "model.onnx_data").unlink()
    (folder / "model.onnx").write_bytes(b"\x08garbage")
    assert with_argmax(folder / "model.onnx") is None
