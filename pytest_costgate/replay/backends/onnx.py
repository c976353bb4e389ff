"""ONNX Runtime backend: replays prompts through a Hugging Face Optimum decoder export folder."""
from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from ...config.specs import ModelSpec
from ...config.yamlsrc import outside_repository
from ...safety.errors import BackendError
from . import Completion, Request, empty_prompt, max_new_tokens, too_long
from .ort import import_onnxruntime

FILES = ("model.onnx", "decoder_model_merged.onnx")
PROVIDERS = ("auto", "cuda", "cpu")


class OnnxBackend:
    """Greedy replay with ONNX Runtime on CUDA (IOBinding, cache on device) or CPU; batched when asked."""

    OPTIONS: ClassVar[frozenset[str]] = frozenset({"path", "file", "provider", "provider_options", "batch_size",
                                                  "max_new_tokens", "threads", "eos_token_id", "chat_template",
                                                  "argmax"})

    def __init__(self, spec: ModelSpec) -> None:
        ort = import_onnxruntime(spec.where)
        from tokenizers import Tokenizer

        from .onnx_decoder import GreedyDecoder, Layout

        opts = spec.options
        where = spec.where
        if "path" not in opts:
            raise BackendError(f"{where}: the onnx backend needs 'path:' (the export folder with model.onnx, "
                               "tokenizer.json and generation_config.json).")
        folder = (spec.base_dir / str(opts["path"])).resolve()
        outside = outside_repository(folder, spec.base_dir)
        if outside is not None:
            raise BackendError(f"{where}: path: {outside}")
        model = self._model_file(folder, opts.get("file"), where)
        tokenizer_file = folder / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise BackendError(f"{where}: {folder} has no tokenizer.json. Save it next to the model with "
                               "tokenizer.save_pretrained(folder).")
        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises bare Exceptions
            raise BackendError(f"{where}: {tokenizer_file} is not a readable tokenizer.json ({exc}).") from None
        from ...inputs.chat_format import load_chat_format

        explicit = (spec.base_dir / str(opts["chat_template"])).resolve() if opts.get("chat_template") else None
        self.chat = load_chat_format(folder, explicit, where)  # chat prompts render with the model's template
        generation = {**_json(folder / "config.json", where), **_json(folder / "generation_config.json", where)}
        self.eos = _eos_ids(opts, generation, folder, self.tokenizer, where)
        pad = generation.get("pad_token_id")
        self.pad = pad if isinstance(pad, int) else (min(self.eos) if self.eos else 0)
        self.default_max_new = int(opts.get("max_new_tokens", generation.get("max_new_tokens") or 64))
        context = generation.get("max_position_embeddings", generation.get("n_positions"))
        self.context = context if isinstance(context, int) else None
        self.batch_size = int(opts.get("batch_size", 1))
        if self.batch_size < 1:
            raise BackendError(f"{where}: 'batch_size' must be 1 or more.")
        provider = str(opts.get("provider", "auto"))
        if provider not in PROVIDERS:
            raise BackendError(f"{where}: 'provider' must be one of {', '.join(PROVIDERS)}, got {provider!r}.")
        self.session, self.provider = self._session(ort, model, provider, opts, where)
        chosen = dict(self.session.get_provider_options().get("CUDAExecutionProvider") or {})
        self.device_id = int(chosen.get("device_id", (opts.get("provider_options") or {}).get("device_id", 0)))
        self.layout = Layout.of(self.session, f"{where} ({model.name})")
        self.decoder = GreedyDecoder(self.session, self.layout, "cuda" if self.provider == "cuda" else "cpu",
                                     self.device_id)
        self.model_file = model
        self.ort_version = ort.__version__

    @classmethod
    def identity(cls, spec: ModelSpec) -> Any:
        """Every file of the export folder and an explicit chat template (incremental replay: any change to
        the weights, external data, config or tokenizer files replays every prompt)."""
        from ..identity import local_identity

        return local_identity(spec)

    @staticmethod
    def _model_file(folder: Path, name: Any, where: str) -> Path:
        if not folder.is_dir():
            raise BackendError(f"{where}: model folder {folder} does not exist. Fix 'path:'.")
        candidates = [str(name)] if name else list(FILES)
        for candidate in candidates:
            if (folder / candidate).is_file():
                return folder / candidate
        raise BackendError(f"{where}: no {' or '.join(candidates)} in {folder}. Export the model with "
                           "optimum-cli export onnx --task text-generation-with-past.")

    @staticmethod
    def _session(ort: Any, model: Path, provider: str, opts: Any, where: str) -> tuple[Any, str]:
        options = ort.SessionOptions()
        # ORT's advisory warnings (e.g. "Memcpy nodes are added to the graph" for the ArgMax tail on CUDA) would
        # print on every run in the job log; errors still do
        options.log_severity_level = 3
        if "threads" in opts:
            options.intra_op_num_threads = int(opts["threads"])
        cuda_options = dict(opts.get("provider_options") or {})
        # TF32 matmuls (the CUDA provider's default on Ampere and later) flip near-tied greedy tokens against a
        # CPU or fp32 baseline: measured on an H100, 2 to 5 of 16 fixture prompts differed with it, none without.
        # A cost gate compares outputs, so full fp32 unless the config opts in with use_tf32: 1.
        cuda_options.setdefault("use_tf32", "0")
        wants_cuda = provider in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers()
        if wants_cuda and "device_id" not in cuda_options:  # xdist on a multi-GPU runner: one GPU per worker
            from ..devices import gpu_count, worker_device

            device = worker_device(os.environ.get("PYTEST_XDIST_WORKER"), gpu_count())
            if device is not None:
                cuda_options["device_id"] = device
        providers: list[Any] = ([("CUDAExecutionProvider", cuda_options)] if wants_cuda else []) + ["CPUExecutionProvider"]
        if wants_cuda:
            _preload_cuda(ort)
        if wants_cuda and provider == "auto":
            # onnxruntime-gpu on a machine without CUDA logs load errors for the attempt; auto means
            # "CPU is fine", so those lines would only be noise. Restored to ORT's default after.
            ort.set_default_logger_severity(4)
        from .onnx_argmax import with_argmax

        edited = with_argmax(model) if opts.get("argmax", True) is not False else None
        try:
            try:
                session = ort.InferenceSession(edited if edited is not None else str(model), sess_options=options,
                                               providers=providers)
            except Exception:  # noqa: BLE001 - the edited copy failed: the model as exported decides
                if edited is None:
                    raise
                session = ort.InferenceSession(str(model), sess_options=options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own Fail/InvalidProtobuf types
            raise BackendError(f"{where}: onnxruntime cannot load {model}: {str(exc).strip()[:300]}. "
                               "Re-export the model; the file may be truncated or not ONNX.") from None
        finally:
            ort.set_default_logger_severity(2)
        used = "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        if provider == "cuda" and used != "cuda":
            raise BackendError(f"{where}: provider 'cuda' was asked for, but onnxruntime could not create the "
                               f"CUDA provider here (available: {', '.join(ort.get_available_providers())}; "
                               f"device: {ort.get_device()}). Install onnxruntime-gpu with a matching CUDA/cuDNN "
                               "on a GPU runner, or use provider: auto or cpu.")
        return session, used

    def fingerprint(self) -> dict[str, str]:
        from ..identity import digest_of

        digest = digest_of(self.model_file)[:16]  # hashed once per run, however many suites use the model
        return {"backend": "onnx", "model": f"{self.model_file.parent.name}/{self.model_file.name}",
                "model_sha256": digest, "provider": self.provider, "device": _device(self.provider, self.device_id),
                "onnxruntime": self.ort_version, "kv": f"{self.layout.mode} {self.layout.layers}x"
                f"{self.layout.kv_heads}x{self.layout.head_size} {self.layout.dtype.__name__}",
                "batch_size": str(self.batch_size), **({"chat_template": self.chat.hash} if self.chat else {})}

    def close(self) -> None:
        self.session = None

    def complete(self, request: Request) -> Completion:
        return self.complete_batch([request])[0]

    def complete_batch(self, requests: Sequence[Request]) -> list[Completion]:
        """Replay requests together (left-padded); each is charged its share of the batch's wall time."""
        from ...inputs.chat_format import batch_texts

        texts, error = batch_texts(self.chat, requests)
        if error is not None:
            return [Completion(error=error) for _ in requests]
        params = requests[0].params
        max_new = max_new_tokens(params, self.default_max_new)
        stops = params.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        # a rendered chat carries its own BOS (as apply_chat_template): no special tokens added to it again
        prompts = [self.tokenizer.encode(text, add_special_tokens=isinstance(r.prompt, str)).ids
                   for r, text in zip(requests, texts)]
        context = self.context
        failed = {i: empty_prompt(requests[i]) for i, p in enumerate(prompts) if not p}
        failed.update({i: too_long(requests[i], len(p), max_new, context) for i, p in enumerate(prompts)
                       if p and context is not None and len(p) + max_new > context})
        if failed:  # those fail alone; the rest of the batch still runs
            fits = [i for i in range(len(requests)) if i not in failed]
            fitted = dict(zip(fits, self.complete_batch([requests[i] for i in fits]) if fits else []))
            return [fitted[i] if i in fitted else failed[i] for i in range(len(requests))]
        stop = (lambda ids: any(s in self.tokenizer.decode(ids) for s in stops)) if stops else None
        start = time.perf_counter()
        try:
            outputs = self.decoder.generate(prompts, max_new, self.eos, self.pad, stop)
        except Exception as exc:  # noqa: BLE001 - onnxruntime errors (OOM, shape) end this batch only
            return [Completion(error=f"onnxruntime failed: {str(exc).strip()[:300]}") for _ in requests]
        wall_ms = (time.perf_counter() - start) * 1000
        done: list[Completion] = []
        for prompt, out in zip(prompts, outputs):
            text = self.tokenizer.decode(out.ids, skip_special_tokens=True)
            for s in stops:
                text = text.split(s)[0] if s in text else text
            done.append(Completion(text=text, input_tokens=len(prompt), output_tokens=len(out.ids),
                                   token_source="engine", ttft_ms=out.ttft_s * 1000, e2e_ms=wall_ms,
                                   busy_ms=wall_ms / len(requests), token_ids=tuple(out.ids)))
        return done


def _eos_ids(opts: Any, generation: dict[str, Any], folder: Path, tokenizer: Any, where: str) -> frozenset[int]:
    """The ids that end a sequence: the config's eos_token_id, else the eos token the tokenizer files name.

    Without any, greedy decoding would run to max_new_tokens on every prompt and inflate output tokens
    and cost without a word; that is an error unless the config says `eos_token_id: none`.
    """
    if "eos_token_id" in opts:
        given = opts["eos_token_id"]
        if given == "none":
            return frozenset()
        ids = [given] if isinstance(given, int) else given
        if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                                           for i in ids):
            raise BackendError(f"{where}: eos_token_id: expected a token id, a list of them, or none.")
        return frozenset(ids)
    eos = generation.get("eos_token_id")
    if isinstance(eos, int) or (isinstance(eos, list) and eos and all(isinstance(i, int) for i in eos)):
        return frozenset([eos] if isinstance(eos, int) else eos)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        token = _json(folder / name, where).get("eos_token")
        token = token.get("content") if isinstance(token, dict) else token
        token_id = tokenizer.token_to_id(token) if isinstance(token, str) else None
        if token_id is not None:
            return frozenset([token_id])
    raise BackendError(f"{where}: {folder} names no end-of-sequence token: config.json and generation_config.json "
                       "have no eos_token_id, and tokenizer_config.json / special_tokens_map.json no eos_token. Copy "
                       "those files from the model's repository, or set eos_token_id: N (or none to always generate "
                       "max_new_tokens).")


def _json(path: Path, where: str) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackendError(f"{where}: {path} is not valid JSON ({exc}).") from None
    return data if isinstance(data, dict) else {}


def _preload_cuda(ort: Any) -> None:
    """CUDA and cuDNN from the nvidia-* pip packages (what torch brings, or onnxruntime-gpu[cuda,cudnn]),
    loaded before the CUDA provider looks for them; system libraries are found without this."""
    import importlib.util

    preload = getattr(ort, "preload_dlls", None)
    if preload is None or importlib.util.find_spec("nvidia") is None:
        return
    try:
        preload()
    except Exception:  # noqa: BLE001 - a library it can't load is the provider's to report
        pass


def _device(provider: str, device_id: int = 0) -> str:
    """The device a replay ran on: the CPU's model, or the GPU's name, memory and driver (nvidia-smi)."""
    if provider != "cuda":
        from ...store.stamp import environment

        return environment()["cpu"]
    try:
        out = subprocess.run(["nvidia-smi", "-i", str(device_id), "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=10, check=False)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "cuda"
    except (OSError, subprocess.SubprocessError, IndexError):
        return "cuda"
