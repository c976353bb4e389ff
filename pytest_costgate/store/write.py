"""Writing `costgate/1` documents and other outputs: atomically (readers see the old file or the new one, never a
torn one), redacted, and under a lock per baseline file (the update itself is gate/update.py's)."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from filelock import FileLock

from ..safety.redact import redact
from .document import Document, decimal_text
from .records import TEXT_COLUMNS

LOCK_TIMEOUT_S = 600


def write_json_atomic(path: Path, doc: Document | dict[str, Any]) -> None:
    """Write JSON, redacted, so that readers see the old file or the new one, never a torn one; gzip when
    the path ends in .gz."""
    text = dumps_document(doc.to_json() if isinstance(doc, Document) else doc)
    data = text.encode("utf-8", "backslashreplace")
    _write_atomic(path, gzip.compress(data, compresslevel=6, mtime=0) if path.name.endswith(".gz") else data)


def write_text_atomic(path: Path, text: str) -> None:
    """Write text, redacted, via a temp file in the same folder, fsync, then rename over the target."""
    _write_atomic(path, redact(text).encode("utf-8", "backslashreplace"))


def dumps_document(data: dict[str, Any]) -> str:
    """Indented JSON with per-prompt rows one per line (a changed prompt is a one-line diff); every free-text
    value passes the redaction point (numbers, hashes and enums can't hold a secret and are skipped)."""
    token = secrets.token_hex(8)
    blocks: list[list[str]] = []  # the per-prompt data, as pieces joined once at the end (it can be 100s of MB)
    encode = json.JSONEncoder(ensure_ascii=True, default=_default).encode

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, list):
            return [walk(item) for item in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"columns", "data"} and isinstance(value["data"], list):
            pieces = ["[\n"]
            for i, (name, column) in enumerate(zip(value["columns"], value["data"])):
                if name in TEXT_COLUMNS:
                    _redact_column(column)
                # one compact line per column: indenting a million values would be most of the file
                pieces += [",\n" if i else "", encode(column)]
            blocks.append(pieces + ["\n]"])
            return {"columns": value["columns"], "data": f"\0{token}-{len(blocks) - 1}"}
        if set(value) == {"columns", "rows"} and isinstance(value["rows"], list):
            text = [i for i, name in enumerate(value["columns"]) if name in TEXT_COLUMNS]
            lines = []
            for row in value["rows"]:
                for i in text:
                    if isinstance(row[i], str):
                        row[i] = redact(row[i])
                lines.append(encode(row))
            blocks.append(["[\n", ",\n".join(lines), "\n]"] if lines else ["[]"])
            return {"columns": value["columns"], "rows": f"\0{token}-{len(blocks) - 1}"}
        return {key: walk(item) for key, item in value.items()}

    skeleton = json.dumps(walk(data), indent=2, default=_default)
    out: list[str] = []
    for i, block in enumerate(blocks):
        before, skeleton = skeleton.split(json.dumps(f"\0{token}-{i}"), 1)
        out += [before, *block]
    return "".join(out + [skeleton, "\n"])


def _redact_column(column: list[Any]) -> None:
    """Redact a column of text in place; one pass over all of it first, since a match is rare."""
    try:
        joined = "\n".join(column)  # the usual column: every value text
    except TypeError:
        joined = "\n".join(v for v in column if isinstance(v, str))
    if redact(joined) == joined:
        return
    for i, value in enumerate(column):
        if isinstance(value, str):
            column[i] = redact(value)


def _default(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return decimal_text(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~_umask())  # mkstemp's 0600 would hide a committed baseline
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # the rename itself is durable only once the folder is synced
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
    except OSError:
        pass


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def lock_for(path: Path) -> FileLock:
    """A lock per baseline file, kept in the temp folder so no lock file litters the repository."""
    key = hashlib.sha256(str(path.resolve()).encode("utf-8", "surrogatepass")).hexdigest()[:24]
    folder = Path(tempfile.gettempdir()) / "costgate-locks"
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / f"{key}.lock"), timeout=LOCK_TIMEOUT_S)


def clean_stale_temps(path: Path) -> None:
    """Temp files a killed writer left behind (we hold the lock, so none is being written now)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            stale.unlink()
        except OSError:
            pass


