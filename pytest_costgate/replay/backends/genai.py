"""onnxruntime-genai model folders (genai_config.json + model.onnx + tokenizer files), the format ONNX Runtime
publishes for Phi, Llama, Mistral and Qwen, replayed with greedy decoding through the onnxruntime-genai package.

Batches are right-padded (what genai's own encode_batch produces; its left-padded batches and padded batch-1
inputs decode differently); eos, pad and the context length come from genai_config.json. Chat prompts render
with the model's chat template (tokenizer_config.json or `chat_template:`), as the onnx backend does.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from ...config.specs import ModelSpec
from ...config.yamlsrc import outside_repository
from ...safety.errors import BackendError
from . import Completion, Request, empty_prompt, max_new_tokens, too_long

PROVIDERS = ("auto", "cpu", "cuda")


def import_genai(where: str) -> Any:
    try:
        import onnxruntime_genai as og
    except ImportError as exc:
        raise BackendError(f"{where}: the genai backend needs onnxruntime-genai, which is not importable here "
                           f"({exc}). Install it: pip install \"pytest-costgate[genai]\" (CPU) or "
                           "onnxruntime-genai-cuda on a CUDA machine.") from None
    return og


class GenaiBackend:
    """Greedy replay of an onnxruntime-genai model folder, batched when asked."""

    OPTIONS: ClassVar[frozenset[str]] = frozenset({"path", "provider", "batch_size", "max_new_tokens",
                                                  "chat_template"})

    def __init__(self, spec: ModelSpec) -> None:
        og = import_genai(spec.where)
        from ...inputs.chat_format import load_chat_format

        opts, where = spec.options, spec.where
        if "path" not in opts:
            raise BackendError(f"{where}: the genai backend needs 'path:' (the folder with genai_config.json).")
        folder = (spec.base_dir / str(opts["path"])).resolve()
        outside = outside_repository(folder, spec.base_dir)
        if outside is not None:
            raise BackendError(f"{where}: path: {outside}")
        config_file = folder / "genai_config.json"
        if not config_file.is_file():
            raise BackendError(f"{where}: {folder} has no genai_config.json; it is not an onnxruntime-genai model "
                               "folder (for an Optimum export use backend: onnx).")
        try:
            genai_config = json.loads(config_file.read_text(encoding="utf-8"))
            model_config = genai_config["model"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"{where}: {config_file} is not a readable genai config ({exc}).") from None
        eos = model_config.get("eos_token_id")
        eos_ids = [eos] if isinstance(eos, int) else eos if isinstance(eos, list) else []
        if not eos_ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in eos_ids):
            raise BackendError(f"{where}: {config_file}: model.eos_token_id must be a token id or a list of them.")
        self.eos = frozenset(eos_ids)
        pad = model_config.get("pad_token_id")
        self.pad = pad if isinstance(pad, int) and not isinstance(pad, bool) else min(self.eos)
        context = model_config.get("context_length")
        self.context = context if isinstance(context, int) else None
        self.default_max_new = int(opts.get("max_new_tokens", 64))
        self.batch_size = int(opts.get("batch_size", 1))
        if self.batch_size < 1:
            raise BackendError(f"{where}: 'batch_size' must be 1 or more.")
        provider = str(opts.get("provider", "auto"))
        if provider not in PROVIDERS:
            raise BackendError(f"{where}: 'provider' must be one of {', '.join(PROVIDERS)}, got {provider!r}.")
        cuda = provider == "cuda" or (provider == "auto" and og.is_cuda_available())
        try:
            config = og.Config(str(folder))
            config.clear_providers()
            if cuda:
                config.append_provider("cuda")
            self.model = og.Model(config)
            self.tokenizer = og.Tokenizer(self.model)
        except Exception as exc:  # noqa: BLE001 - onnxruntime-genai raises RuntimeError with its own text
            hint = " (genai's tokenizer also needs tokenizer_config.json)" if "tokenizer_config" in str(exc) else ""
            raise BackendError(f"{where}: onnxruntime-genai cannot load {folder}: {str(exc).strip()[:300]}{hint}"
                               ) from None
        self.provider = "cuda" if cuda else "cpu"
        self.folder, self.og = folder, og
        explicit = (spec.base_dir / str(opts["chat_template"])).resolve() if opts.get("chat_template") else None
        self.chat = load_chat_format(folder, explicit, where)
        model_file = folder / str(model_config.get("decoder", {}).get("filename", "model.onnx"))
        self.model_file = model_file if model_file.is_file() else config_file

    @classmethod
    def identity(cls, spec: ModelSpec) -> Any:
        """Every file of the model folder and an explicit chat template (for incremental replay)."""
        from ..identity import local_identity

        return local_identity(spec)

    def fingerprint(self) -> dict[str, str]:
        from ..identity import digest_of
        from .onnx import _device

        digest = digest_of(self.model_file)[:16]  # hashed once per run, however many suites use the model
        return {"backend": "genai", "model": f"{self.folder.name}/{self.model_file.name}", "model_sha256": digest,
                "provider": self.provider, "device": _device(self.provider), "onnxruntime_genai": self.og.__version__,
                "batch_size": str(self.batch_size), **({"chat_template": self.chat.hash} if self.chat else {})}

    def close(self) -> None:
        self.model = None

    def complete(self, request: Request) -> Completion:
        return self.complete_batch([request])[0]

    def complete_batch(self, requests: Sequence[Request]) -> list[Completion]:
        """Replay requests together (right-padded); each is charged its share of the batch's wall time."""
        import numpy as np

        from ...inputs.chat_format import batch_texts

        texts, error = batch_texts(self.chat, requests)
        if error is not None:
            return [Completion(error=error) for _ in requests]
        params = requests[0].params
        max_new = max_new_tokens(params, self.default_max_new)
        prompts = [list(map(int, self.tokenizer.encode(text))) for text in texts]
        if not all(prompts):
            if len(requests) > 1:
                return [c for r in requests for c in self.complete_batch([r])]
            return [empty_prompt(requests[0])]
        width = max(len(p) for p in prompts)
        if self.context is not None and width + max_new > self.context:
            if len(requests) > 1:  # alone, the ones that fit still run
                return [c for r in requests for c in self.complete_batch([r])]
            return [too_long(requests[0], width, max_new, self.context)]
        tokens = np.full((len(prompts), width), self.pad, dtype=np.int32)
        for row, ids in enumerate(prompts):
            tokens[row, :len(ids)] = ids
        start = time.perf_counter()
        try:
            search = self.og.GeneratorParams(self.model)
            search.set_search_options(do_sample=False, batch_size=len(prompts), max_length=width + max_new)
            generator = self.og.Generator(self.model, search)
            generator.append_tokens(tokens)
            ttft = None
            while not generator.is_done():
                generator.generate_next_token()
                if ttft is None:
                    ttft = time.perf_counter() - start
            sequences = [generator.get_sequence(row) for row in range(len(prompts))]
        except Exception as exc:  # noqa: BLE001 - onnxruntime-genai errors end this batch only
            return [Completion(error=f"onnxruntime-genai failed: {str(exc).strip()[:300]}") for _ in requests]
        wall_ms = (time.perf_counter() - start) * 1000
        done = []
        for ids, sequence in zip(prompts, sequences):
            new: list[int] = []
            for token in sequence[width:width + max_new].tolist():
                new.append(int(token))
                if token in self.eos:
                    break
            text = self.tokenizer.decode(np.asarray([t for t in new if t not in self.eos], dtype=np.int32))
            done.append(Completion(text=text, input_tokens=len(ids), output_tokens=len(new), token_source="engine",
                                   ttft_ms=(ttft or 0.0) * 1000, e2e_ms=wall_ms, busy_ms=wall_ms / len(requests),
                                   token_ids=tuple(new)))
        return done
