"""The decoder export with the greedy choice made in the graph: an ArgMax over the last position's logits.

Only the next token ids ([batch] int64) then come back to the host each step instead of the logits
([batch, sequence, vocab] floats: for a 128k vocabulary and a 1,000-token prompt, half a gigabyte copied
off the GPU for the first step). ArgMax takes the first of equal maxima, as numpy's argmax does, so the
tokens are the same.

The edit is made on the model's bytes, in memory, each time a session is made: the three nodes are appended to
the serialized graph (protobuf merges repeated fields, so an appended node is a node), which takes milliseconds
and needs neither the `onnx` package nor a cache on disk, so no file anyone could plant stands in for the model.
Models with external data (over 2 GB), and bytes that are not a ModelProto with a `logits` output, are used as
they are (the logits path).
"""
from __future__ import annotations

from pathlib import Path

NEXT = "costgate_next_token"
_LAST = "costgate_last_position"
_LAST_LOGITS = "costgate_last_logits"
LIMIT = 1_800_000_000  # protobuf's 2 GB ceiling, with room for the edit
_INT64, _ATTR_INT, _LEN, _VARINT = 7, 2, 2, 0


# ---- protobuf wire format: just what the edit needs -----------------------------------------------------------

def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 as protobuf writes it: ten bytes
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _tag(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _text(field: int, value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _tag(field, _LEN) + _varint(len(data)) + data


def _int(field: int, value: int) -> bytes:
    return _tag(field, _VARINT) + _varint(value)


def _attribute(name: str, value: int) -> bytes:  # AttributeProto: name 1, i 3, type 20 (INT)
    return _text(1, name) + _int(3, value) + _int(20, _ATTR_INT)


def _node(inputs: list[str], outputs: list[str], name: str, op: str, attributes: list[tuple[str, int]]) -> bytes:
    # NodeProto: input 1, output 2, name 3, op_type 4, attribute 5 (by name, as onnx.helper.make_node sorts them)
    return (b"".join(_text(1, i) for i in inputs) + b"".join(_text(2, o) for o in outputs) + _text(3, name)
            + _text(4, op) + b"".join(_text(5, _attribute(k, v)) for k, v in sorted(attributes)))


def tail() -> tuple[bytes, bytes, bytes]:
    """The graph's additions as GraphProto fields: the two nodes (field 1), the position constant (initializer,
    field 5) and the token-id output (field 12); equal to what onnx.helper makes (a test checks)."""
    gather = _node(["logits", _LAST], [_LAST_LOGITS], "costgate_last", "Gather", [("axis", 1)])
    argmax = _node([_LAST_LOGITS], [NEXT], "costgate_argmax", "ArgMax", [("axis", -1), ("keepdims", 0)])
    # TensorProto: data_type 2, int64_data 7 (packed), name 8
    last = _int(2, _INT64) + _text(7, _varint(-1)) + _text(8, _LAST)
    # ValueInfoProto: name 1, type 2 = TypeProto{tensor_type 1 = {elem_type 1, shape 2 = {dim 1 = {dim_param 2}}}}
    dim = _text(1, _text(2, "batch_size"))
    output = _text(1, NEXT) + _text(2, _text(1, _int(1, _INT64) + _text(2, dim)))
    return _text(1, gather) + _text(1, argmax), _text(5, last), _text(12, output)


def _fields(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[int, int, int, int, int]]:
    """(field, wire type, start of the field's tag, start of its value, end) of each field; ValueError if the
    bytes are not protobuf (or use groups)."""
    end = len(data) if end is None else end
    out = []
    pos = start
    while pos < end:
        at = pos
        key, pos = _read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, after = _read_varint(data, pos)
            out.append((field, wire, at, pos, after))
            pos = after
        elif wire == 2:
            length, value = _read_varint(data, pos)
            if value + length > end:
                raise ValueError("truncated")
            out.append((field, wire, at, value, value + length))
            pos = value + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            out.append((field, wire, at, pos, pos + size))
            pos += size
        else:
            raise ValueError("not a message this edit reads")
    if pos != end:
        raise ValueError("truncated")
    return out


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def edit(data: bytes) -> bytes | None:
    """The ModelProto `data` with the ArgMax tail appended to its graph, or None when it can't be added: not a
    model with one graph, no `logits` output, the tail already there, or weights stored outside the file."""
    try:
        graphs = [f for f in _fields(data) if f[0] == 7 and f[1] == _LEN]
        if len(graphs) != 1:
            return None
        _, _, tag_at, start, end = graphs[0]
        outputs = []
        for field, wire, _, value, stop in _fields(data, start, end):
            if field == 12 and wire == _LEN:  # an output: its name is field 1
                outputs += [data[v:s].decode("utf-8", "replace") for f, w, _, v, s in _fields(data, value, stop)
                            if f == 1 and w == _LEN]
            elif field == 5 and wire == _LEN:  # an initializer: external data (13) or data_location EXTERNAL (14)
                for f, _wire, _, v, _end in _fields(data, value, stop):
                    if f == 13 or (f == 14 and _read_varint(data, v)[0] == 1):
                        return None
        if "logits" not in outputs or NEXT in outputs:
            return None
    except ValueError:
        return None
    nodes, initializer, output = tail()
    graph = data[start:end] + nodes + initializer + output
    return data[:tag_at] + _tag(7, _LEN) + _varint(len(graph)) + graph + data[end:]


def with_argmax(model: Path) -> bytes | None:
    """The edited model's bytes, or None when the edit can't be made (then the export is used as it is)."""
    try:
        size = model.stat().st_size
        external = [p for p in model.parent.iterdir() if p.name != model.name and p.name.startswith(model.stem)
                    and ("data" in p.suffix or "_data" in p.name)]  # model.onnx_data, model.onnx.data
        if size > LIMIT or external:
            return None
        return edit(model.read_bytes())
    except OSError:
        return None
