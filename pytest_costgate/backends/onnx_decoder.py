"""Greedy decoding of a Hugging Face Optimum decoder export with ONNX Runtime.

The KV layout (layers, kv heads, head size, dtype) is read from the model's own inputs, so
multi-head and grouped-query attention need no configuration. The loop binds outputs with
IOBinding and feeds each step's `present.*` OrtValues back as the next step's `past_key_values.*`,
so on CUDA the cache never leaves the device; only the last position's logits are copied out.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import BackendError

_PAST = re.compile(r"^past_key_values\.(\d+)\.(key|value)$")
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


@dataclass(frozen=True)
class Layout:
    """What a decoder export takes: cache mode and KV geometry, read from the session."""

    mode: str  # past | merged | recompute
    layers: int
    kv_heads: int
    head_size: int
    dtype: Any
    inputs: frozenset[str]

    @classmethod
    def of(cls, session: Any, where: str) -> Layout:
        inputs = {i.name: i for i in session.get_inputs()}
        outputs = {o.name for o in session.get_outputs()}
        found = f"inputs {sorted(inputs)}, outputs {sorted(outputs)}"
        if "input_ids" not in inputs or "logits" not in outputs:
            raise BackendError(f"{where}: not a causal-LM decoder export: expected an 'input_ids' input and a "
                               f"'logits' output, found {found}. Export with optimum-cli export onnx "
                               "--task text-generation-with-past.")
        past = {m.group(1, 2): inputs[name] for name in inputs if (m := _PAST.match(name))}
        if not past:
            return cls("recompute", 0, 0, 0, np.float32, frozenset(inputs))
        layers = 1 + max(int(layer) for layer, _ in past)
        shapes = set()
        for layer in range(layers):
            for kind in ("key", "value"):
                meta = past.get((str(layer), kind))
                if meta is None or f"present.{layer}.{kind}" not in outputs:
                    raise BackendError(f"{where}: KV cache layer {layer} lacks past_key_values.{layer}.{kind} or "
                                       f"present.{layer}.{kind}; found {found}.")
                shape, dtype = meta.shape, meta.type
                if len(shape) != 4 or not isinstance(shape[1], int) or not isinstance(shape[3], int) or dtype not in _DTYPES:
                    raise BackendError(f"{where}: unsupported KV layout {meta.name}: shape {shape}, type {dtype}; "
                                       "expected [batch, kv_heads, past_sequence, head_size] of float or float16.")
                shapes.add((shape[1], shape[3], dtype))
        if len(shapes) != 1:
            raise BackendError(f"{where}: KV layers differ in shape or type ({sorted(map(str, shapes))}); "
                               "expected one layout for all layers.")
        heads, size, dtype = shapes.pop()
        mode = "merged" if "use_cache_branch" in inputs else "past"
        return cls(mode, layers, heads, size, _DTYPES[dtype], frozenset(inputs))


@dataclass
class Generated:
    """One sequence's result: new token ids, and when its first token was ready."""

    ids: list[int]
    ttft_s: float


class GreedyDecoder:
    """Greedy generation for a batch of token-id prompts, left-padded with an attention mask."""

    def __init__(self, session: Any, layout: Layout, device: str, device_id: int = 0) -> None:
        import onnxruntime as ort

        self.ort = ort
        self.session = session
        self.layout = layout
        self.device = device  # "cpu" or "cuda"
        self.device_id = device_id

    def _value(self, array: np.ndarray) -> Any:
        return self.ort.OrtValue.ortvalue_from_numpy(array, self.device, self.device_id)

    def generate(self, prompts: Sequence[list[int]], max_new_tokens: int, eos: frozenset[int], pad: int,
                 stop: Callable[[list[int]], bool] | None = None) -> list[Generated]:
        """Greedy-decode every prompt; a sequence ends at eos, max_new_tokens or when `stop(ids)` says so."""
        start = time.perf_counter()
        batch, longest = len(prompts), max(len(p) for p in prompts)
        ids = np.full((batch, longest), pad, dtype=np.int64)
        mask = np.zeros((batch, longest), dtype=np.int64)
        for row, prompt in enumerate(prompts):
            ids[row, longest - len(prompt):] = prompt
            mask[row, longest - len(prompt):] = 1
        results = [Generated([], 0.0) for _ in prompts]
        done = np.zeros(batch, dtype=bool)
        past: dict[str, Any] = {}
        step_ids = ids
        for step in range(max_new_tokens):
            logits, past = self._step(step_ids, mask, past, first=step == 0)
            next_ids = logits.argmax(-1).astype(np.int64)
            now = time.perf_counter() - start
            for row in range(batch):
                if done[row]:
                    continue
                token = int(next_ids[row])
                results[row].ids.append(token)
                if step == 0:
                    results[row].ttft_s = now
                if token in eos or (stop is not None and stop(results[row].ids)):
                    done[row] = True
            if done.all():
                break
            next_ids[done] = pad
            mask = np.concatenate([mask, np.ones((batch, 1), dtype=np.int64)], axis=1)
            if self.layout.mode == "recompute":
                ids = np.concatenate([ids, next_ids[:, None]], axis=1)
                step_ids = ids
            else:
                step_ids = next_ids[:, None]
        return results

    def _step(self, input_ids: np.ndarray, mask: np.ndarray, past: dict[str, Any], first: bool) -> tuple[np.ndarray, dict[str, Any]]:
        layout = self.layout
        binding = self.session.io_binding()
        batch, length = input_ids.shape
        binding.bind_ortvalue_input("input_ids", self._value(input_ids))
        if "attention_mask" in layout.inputs:
            binding.bind_ortvalue_input("attention_mask", self._value(mask))
        if "position_ids" in layout.inputs:
            # Left padding: positions count real tokens only, as transformers' generate() does.
            positions = np.maximum(mask.cumsum(-1) - 1, 0)[:, -length:].astype(np.int64)
            binding.bind_ortvalue_input("position_ids", self._value(positions))
        bound = []
        if layout.mode != "recompute":
            if "use_cache_branch" in layout.inputs:
                binding.bind_ortvalue_input("use_cache_branch", self._value(np.array([not first])))
            for layer in range(layout.layers):
                for kind in ("key", "value"):
                    name = f"past_key_values.{layer}.{kind}"
                    value = past.get(name)
                    if value is None:
                        value = self._value(np.zeros((batch, layout.kv_heads, 0, layout.head_size), dtype=layout.dtype))
                    binding.bind_ortvalue_input(name, value)
                    bound.append(f"present.{layer}.{kind}")
        bound.append("logits")
        for name in bound:
            binding.bind_output(name, self.device, self.device_id)
        self.session.run_with_iobinding(binding)
        values = dict(zip(bound, binding.get_outputs()))  # in the order they were bound
        logits = values["logits"].numpy()[:, -1, :]
        present = {name.replace("present.", "past_key_values.", 1): value
                   for name, value in values.items() if name.startswith("present.")}
        return logits, present
