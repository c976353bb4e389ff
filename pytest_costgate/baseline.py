"""Writing `costgate/1` documents: reports and baselines, atomically; baseline updates merged under a lock.

A baseline update never shrinks a suite silently: a suite this run did not measure completely
(time budget, failed requests) keeps its old entry unless the partial opt-in merges the old records
of the prompts it missed. Concurrent `-k` updates both land: the file is re-read, merged and written
while holding a lock.
"""
from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import secrets
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping

from filelock import FileLock, Timeout

from .specs import Config
from .document import Document, SuiteEntry, Summary, decimal_text
from .records import TEXT_COLUMNS
from .environment import environment, git_sha
from .errors import BaselineError
from .redact import redact

LOCK_TIMEOUT_S = 600


def config_id(path: Path) -> str:
    """The config's path relative to the working directory (the gate id of its PR comment), else its name."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return path.name


def document(config: Config, suites: Mapping[str, SuiteEntry], kind: str, summary: Summary | None = None,
             shard: tuple[int, int] | None = None) -> Document:
    """A full costgate/1 document for these suites."""
    return Document(
        suites=MappingProxyType(dict(suites)), kind=kind,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), git_sha=git_sha(config.path.parent),
        config=config_id(config.path), environment=MappingProxyType(environment()),
        price_source=config.price_source, price_date=config.price_date, summary=summary,
        config_sha256=config_digest(config.path), shard=shard)


def config_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def removed_suites(names: Iterable[str], baseline: Document | None) -> list[str]:
    """Suites the baseline has that are not among `names`."""
    wanted = set(names)
    return [name for name in (baseline.suites if baseline else {}) if name not in wanted]


def summary(suites: Mapping[str, SuiteEntry], baseline: Document | None, removed: Iterable[str]) -> Summary:
    """Run-level figures: overall status, the monthly estimate with its change, removed suites."""
    from decimal import Decimal

    from .verdict import worst

    base = baseline.suites if baseline else {}
    cand_total = base_total = Decimal(0)
    compared = False
    for name, entry in suites.items():
        month = entry.metrics.monthly_cost
        base_entry = base.get(name)
        base_month = base_entry.metrics.monthly_cost if base_entry else None
        if month is not None:
            cand_total += month
        if month is not None and base_month is not None:
            base_total += base_month
            compared = True
    return Summary(
        status=worst(e.status for e in suites.values()), monthly_cost=cand_total,
        baseline_monthly_cost=base_total if compared else None,
        monthly_delta=cand_total - base_total if compared else None, removed_suites=tuple(removed),
        baseline_git_sha=baseline.git_sha if baseline else None,
        baseline_created=baseline.created if baseline else None)


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


def _clean_stale_temps(path: Path) -> None:
    """Temp files a killed writer left behind (we hold the lock, so none is being written now)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            stale.unlink()
        except OSError:
            pass


@dataclass(frozen=True)
class Update:
    """What a baseline update did: the lines to print and whether everything asked for was written."""

    lines: tuple[str, ...]
    ok: bool


def update_baseline(config: Config, suites: Mapping[str, SuiteEntry], partial: bool) -> Update:
    """Merge this run's suites into the baseline file: re-read, merge and write while holding its lock."""
    path = config.baseline
    lines: list[str] = []
    ok = True
    try:
        with lock_for(path):
            _clean_stale_temps(path)
            from .schema import read_document

            try:
                current = read_document(path)
            except BaselineError as exc:
                if not partial and any(e.unmeasured or e.metrics.errors for e in suites.values()):
                    raise
                lines.append(f"costgate: warning: the old baseline is unreadable and will be replaced ({exc})")
                current = None
            stored = dict(current.suites) if current else {}
            changed = False
            for name, entry in suites.items():
                merged, message = _merge(name, entry.stored(), stored.get(name), partial)
                if merged is None:
                    ok = False
                else:
                    stored[name], changed = merged, True
                if message:
                    lines.append(message)
            if not changed:
                return Update((*lines, f"costgate: the baseline {path} was left as it was"), ok)
            order = [s.name for s in config.suites]
            kept = {name: stored[name] for name in order if name in stored}
            write_json_atomic(path, document(config, kept, "baseline"))
            lines.append(f"costgate: wrote baseline {path}")
    except Timeout:
        return Update((f"costgate: ERROR: could not write the baseline: another costgate run has held its lock for "
                       f"{LOCK_TIMEOUT_S}s",), False)
    except (OSError, BaselineError) as exc:
        return Update((*lines, f"costgate: ERROR: could not write the baseline to {path}: {exc}"), False)
    return Update(tuple(lines), ok)


def _merge(name: str, entry: SuiteEntry, old: SuiteEntry | None, partial: bool) -> tuple[SuiteEntry | None, str | None]:
    """The entry to store for one suite, or None (keep the old one) when this run missed prompts."""
    if old is not None and any(r.reused for r in entry.prompts.values()):
        # An incremental run: unchanged prompts keep the baseline's own records, timings included.
        from .aggregate import aggregate

        kept = {pid: (old.prompts[pid] if r.reused and pid in old.prompts else replace(r, reused=False))
                for pid, r in entry.prompts.items()}
        entry = replace(entry, prompts=MappingProxyType(kept),
                        metrics=aggregate(list(kept.values()), entry.requests_per_month).metrics())
    failed = [pid for pid, r in entry.prompts.items() if r.error is not None]
    missing = list(entry.unmeasured) + failed
    if not missing:
        return entry, None
    what = (f"{len(entry.unmeasured)} prompt(s) not measured (time budget)" if entry.unmeasured else "") + \
        (", " if entry.unmeasured and failed else "") + (f"{len(failed)} failed" if failed else "")
    if not partial:
        kept = "its baseline entry was left as it was" if old else "it was not added to the baseline"
        return None, (f"costgate: ERROR: suite '{name}': {what}; {kept}. Re-run "
                      "without a time budget once the model answers, or add --costgate-update-partial to keep the "
                      "old records of the prompts this run missed.")
    from .aggregate import aggregate

    old_records = old.prompts if old else {}
    records = {pid: r for pid, r in entry.prompts.items() if r.error is None}
    reused = [pid for pid in missing if pid in old_records and old_records[pid].error is None]
    records.update({pid: old_records[pid] for pid in reused})
    dropped = len(missing) - len(reused)
    metrics = aggregate(list(records.values()), entry.requests_per_month).metrics()
    merged = replace(entry, prompts=MappingProxyType(records), metrics=metrics, unmeasured=(), errors=())
    return merged, (f"costgate: suite '{name}': {what}; kept the old baseline records of {len(reused)} of them"
                    + (f", {dropped} had none and are left out" if dropped else "") + " (--costgate-update-partial)")
