"""Greedy decoding of a Hugging Face Optimum decoder export with ONNX Runtime.

The KV layout (layers, kv heads, head size, dtype) is read from the model's own inputs, so
multi-head and grouped-query attention need no configuration. On CUDA the loop binds
outputs with IOBinding and feeds each step's `present.*` OrtValues back as the next step's
`past_key_values.*`, so the cache never leaves the device; only the logits are copied out. On the
CPU plain numpy feeds are cheaper (the cache is in host memory anyway).
"""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...safety.errors import BackendError
from .onnx_argmax import NEXT

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

    def __init__(self, session: Any, layout: Layout, device: str, device_id: int = 0,
                 iobinding: bool | None = None) -> None:
        import onnxruntime as ort

        self.ort = ort
        self.session = session
        self.layout = layout
        self.device = device  # "cpu" or "cuda"
        self.device_id = device_id
        self.iobinding = device == "cuda" if iobinding is None else iobinding
        self.past_names = [f"past_key_values.{i}.{kind}" for i in range(layout.layers) for kind in ("key", "value")]
        outputs = {o.name for o in session.get_outputs()}
        self.argmax = NEXT in outputs  # the greedy choice made in the graph: token ids come back, not logits
        self.output_names = [NEXT if self.argmax else "logits"] + [n.replace("past_key_values.", "present.", 1)
                                                                   for n in self.past_names]
        # the bound C++ run, skipping the Python wrapper's per-call checks (a few microseconds a step)
        inner = getattr(session, "_sess", None)
        self._run = (lambda names, feed: inner.run(names, feed, None)) if inner is not None and \
            hasattr(inner, "run") else session.run

    def _value(self, array: np.ndarray) -> Any:
        return self.ort.OrtValue.ortvalue_from_numpy(array, self.device, self.device_id)

    def generate(self, prompts: Sequence[list[int]], max_new_tokens: int, eos: frozenset[int], pad: int,
                 stop: Callable[[list[int]], bool] | None = None) -> list[Generated]:
        """Greedy-decode every prompt; a sequence ends at eos, max_new_tokens or when `stop(ids)` says so."""
        start = time.perf_counter()
        batch, longest = len(prompts), max(len(p) for p in prompts)
        width = longest + max_new_tokens
        ids = np.full((batch, longest), pad, dtype=np.int64)
        # The mask and positions for every step, made once: each step feeds a slice (a view, no allocation).
        mask_all = np.ones((batch, width), dtype=np.int64)
        for row, prompt in enumerate(prompts):
            ids[row, longest - len(prompt):] = prompt
            mask_all[row, :longest - len(prompt)] = 0
        # Left padding: positions count real tokens only, as transformers' generate() does.
        positions_all = np.maximum(mask_all.cumsum(-1) - 1, 0)
        recompute = self.layout.mode == "recompute"
        results = [Generated([], 0.0) for _ in prompts]
        outputs = [r.ids for r in results]
        live = list(range(batch))  # rows still generating
        past: dict[str, Any] = {}
        step_ids, positions = ids, positions_all[:, :longest]
        step = self._step_bound if self.iobinding else self._step_cpu
        for index in range(max_new_tokens):
            length = longest + index
            chosen, past = step(self._feed(step_ids, mask_all[:, :length], positions, past, index == 0))
            next_ids = chosen if self.argmax else chosen.argmax(-1).astype(np.int64)
            tokens = next_ids.tolist()
            if index == 0:
                now = time.perf_counter() - start
                for r in results:
                    r.ttft_s = now
            finished = []
            for row in live:
                token = tokens[row]
                outputs[row].append(token)
                if token in eos or (stop is not None and stop(outputs[row])):
                    finished.append(row)
            if finished:
                live = [row for row in live if row not in finished]
                if not live:
                    break
                next_ids = np.array(tokens, dtype=np.int64)
                for row in range(batch):
                    if row not in live:
                        next_ids[row] = pad
            if recompute:
                ids = np.concatenate([ids, np.asarray(next_ids, dtype=np.int64).reshape(batch, 1)], axis=1)
                step_ids, positions = ids, positions_all[:, :length + 1]
            else:
                step_ids = np.asarray(next_ids, dtype=np.int64).reshape(batch, 1)
                positions = positions_all[:, length:length + 1]
        return results

    def _feed(self, input_ids: np.ndarray, mask: np.ndarray, positions: np.ndarray, past: dict[str, Any],
              first: bool) -> dict[str, Any]:
        layout = self.layout
        feed: dict[str, Any] = {"input_ids": input_ids}
        if "attention_mask" in layout.inputs:
            feed["attention_mask"] = mask
        if "position_ids" in layout.inputs:
            feed["position_ids"] = positions
        if layout.mode != "recompute":
            if "use_cache_branch" in layout.inputs:
                feed["use_cache_branch"] = np.array([not first])
            if first:
                empty = np.zeros((input_ids.shape[0], layout.kv_heads, 0, layout.head_size), dtype=layout.dtype)
                past = {name: empty for name in self.past_names}
            feed.update(past)
        return feed

    def _step_cpu(self, feed: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """Plain session.run: on the CPU the cache already lives in host memory, so numpy in/out is cheapest."""
        outputs = self._run(self.output_names, feed)
        return (outputs[0] if self.argmax else outputs[0][:, -1, :]), dict(zip(self.past_names, outputs[1:]))

    def _step_bound(self, feed: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """IOBinding: present.* stay on the GPU as OrtValues and are bound as the next step's past."""
        binding = self.session.io_binding()
        for name, value in feed.items():
            if not isinstance(value, np.ndarray):
                binding.bind_ortvalue_input(name, value)
            elif name.startswith("past_key_values."):  # the empty first-step cache, made on the device
                binding.bind_ortvalue_input(name, self._value(value))
            else:
                binding.bind_cpu_input(name, value)
        for name in self.output_names:
            binding.bind_output(name, self.device, self.device_id)
        self.session.run_with_iobinding(binding)
        values = binding.get_outputs()  # in the order they were bound: token ids (or logits), then present.*
        first = values[0].numpy()
        return (first if self.argmax else first[:, -1, :]), dict(zip(self.past_names, values[1:]))
