"""The machine-speed probe: a fixed micro-workload timed between requests while a local model replays, so a
stored baseline's latency can be judged at the runner's speed of the day (judge/calibration.py computes the
factor from these timings; see there for why and how far it is trusted)."""
from __future__ import annotations

import time

import numpy as np

from ..store.document import CALIBRATION_MAX_SAMPLES as MAX_SAMPLES
from .backends.ort import import_onnxruntime

WORKLOAD = "ort-matmul-256x6-b16-v1"


class Probe:
    """The fixed workload, on ONNX Runtime's CPU provider with one thread (built once, in memory)."""

    def __init__(self) -> None:
        from onnx import TensorProto, helper, numpy_helper

        ort = import_onnxruntime("calibration")
        rng = np.random.default_rng(7)
        size, layers = 256, 6
        nodes, inits = [], []
        previous = "x"
        for i in range(layers):
            inits.append(numpy_helper.from_array((rng.standard_normal((size, size)) / 16).astype(np.float32), f"w{i}"))
            nodes.append(helper.make_node("MatMul", [previous, f"w{i}"], [f"m{i}"]))
            nodes.append(helper.make_node("Tanh", [f"m{i}"], [f"t{i}"]))
            previous = f"t{i}"
        graph = helper.make_graph(nodes, "calibration", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16, size])],
                                  [helper.make_tensor_value_info(previous, TensorProto.FLOAT, [16, size])], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the same work everywhere
        self._session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self._feed = {"x": rng.standard_normal((16, size)).astype(np.float32)}
        self._run = self._session.run
        for _ in range(3):
            self._run(None, self._feed)
        self.samples: list[float] = []

    def __call__(self) -> None:
        """Time the workload five times (~0.5 ms on a CI core), in ms: the machine's speed just now."""
        began = time.perf_counter()
        for _ in range(5):
            self._run(None, self._feed)
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append((time.perf_counter() - began) * 1000)
