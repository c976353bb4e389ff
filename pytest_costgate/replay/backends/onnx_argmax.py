"""The decoder export with the greedy choice made in the graph: an ArgMax over the last position's logits.

Only the next token ids ([batch] int64) then come back to the host each step instead of the logits
([batch, sequence, vocab] floats: for a 128k vocabulary and a 1,000-token prompt, half a gigabyte copied
off the GPU for the first step). ArgMax takes the first of equal maxima, as numpy's argmax does, so the
tokens are the same.

The edited model is cached beside nothing the user owns: COSTGATE_CACHE_DIR, else ~/.cache/pytest-costgate,
one file per source model content, written atomically. Models with external data (over 2 GB) and files
onnx cannot read are used as they are (the logits path).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

NEXT = "costgate_next_token"
_LAST = "costgate_last_position"
_LAST_LOGITS = "costgate_last_logits"
LIMIT = 1_800_000_000  # protobuf's 2 GB ceiling, with room for the edit


def cache_dir() -> Path:
    folder = os.environ.get("COSTGATE_CACHE_DIR")
    return Path(folder) if folder else Path.home() / ".cache" / "pytest-costgate"


def with_argmax(model: Path) -> Path | None:
    """The cached edited copy of `model` (made now if missing), or None when the edit can't be made."""
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:
        return None
    try:
        size = model.stat().st_size
        external = [p for p in model.parent.iterdir() if p.name != model.name and p.name.startswith(model.stem)
                    and ("data" in p.suffix or "_data" in p.name)]  # model.onnx_data, model.onnx.data
        if size > LIMIT or external:
            return None
        data = model.read_bytes()
    except OSError:
        return None
    digest = hashlib.sha256(data).hexdigest()[:32]
    target = cache_dir() / "onnx" / f"{digest}-argmax.onnx"
    if target.is_file():
        return target
    try:
        proto = onnx.load_from_string(data)
    except Exception:  # noqa: BLE001 - onnx raises DecodeError and friends: the unedited model still loads
        return None
    graph = proto.graph
    if any(init.data_location == TensorProto.EXTERNAL for init in graph.initializer) or \
            not any(o.name == "logits" for o in graph.output) or any(o.name == NEXT for o in graph.output):
        return None
    graph.initializer.append(helper.make_tensor(_LAST, TensorProto.INT64, [], [-1]))
    graph.node.append(helper.make_node("Gather", ["logits", _LAST], [_LAST_LOGITS], axis=1, name="costgate_last"))
    graph.node.append(helper.make_node("ArgMax", [_LAST_LOGITS], [NEXT], axis=-1, keepdims=0, name="costgate_argmax"))
    graph.output.append(helper.make_tensor_value_info(NEXT, TensorProto.INT64, ["batch_size"]))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=target.parent, prefix=".argmax-", suffix=".tmp")
        with os.fdopen(handle, "wb") as out:
            out.write(proto.SerializeToString())
        os.replace(temp, target)
    except OSError:  # a read-only home: edit in memory next time too, never fail the replay over a cache
        return None
    return target
