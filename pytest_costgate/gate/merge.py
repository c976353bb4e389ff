"""`costgate merge`: the partial reports of a CI matrix joined into one report, judged once."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..config.loader import load_config
from ..judge.summary import removed_suites, summary
from ..safety.errors import CostgateError
from ..store.document import Document, SuiteEntry
from ..store.schema import read_document
from ..store.stamp import config_digest, document
from ..store.write import write_json_atomic
from .parts import join_and_judge, verify_parts


def load_parts(paths: list[Path]) -> list[Document]:
    """The parts, checked: partial reports of one commit and config, shards 1..N each exactly once."""
    parts = []
    for path in paths:
        doc = read_document(path, "report")
        if doc is None:
            raise CostgateError(f"{path}: no such partial report.")
        if doc.kind != "partial" or doc.shard is None:
            raise CostgateError(f"{path} is a {doc.kind}, not a partial report; merge takes the reports written by "
                                "pytest --costgate --costgate-shard K/N --costgate-report PATH.")
        parts.append(doc)
    first = parts[0]
    for path, doc in zip(paths, parts):
        if not doc.config_sha256:
            raise CostgateError(f"{path} does not say which config made it (no config_sha256): merge checks that "
                                "every part comes from one config, and can't for this one. Re-run its matrix job.")
    totals = {doc.shard[1] for doc in parts if doc.shard}
    if len(totals) != 1:
        raise CostgateError(f"the parts split the suites differently ({', '.join(f'/{n}' for n in sorted(totals))}); "
                            "every matrix job needs the same N in --costgate-shard K/N.")
    total = totals.pop()
    seen: dict[int, Path] = {}
    for path, doc in zip(paths, parts):
        k = doc.shard[0]  # type: ignore[index]
        if k in seen:
            raise CostgateError(f"{path} and {seen[k]} are both shard {k}/{total}; each shard once.")
        seen[k] = path
        if doc.git_sha != first.git_sha:
            raise CostgateError(f"{path} comes from commit {doc.git_sha}, {paths[0]} from {first.git_sha}; merge parts "
                                "of one commit.")
        if doc.config_sha256 != first.config_sha256:
            raise CostgateError(f"{path} was made with another costgate config than {paths[0]}; merge parts of one "
                                "config.")
        if set(doc.suites) != set(first.suites):
            raise CostgateError(f"{path} has suites {sorted(doc.suites)}, {paths[0]} has {sorted(first.suites)}; every "
                                "job must run the same suites (no -k or -m differences).")
    missing = sorted(set(range(1, total + 1)) - set(seen))
    if missing:
        raise CostgateError(f"shard{'s' * (len(missing) > 1)} {', '.join(f'{k}/{total}' for k in missing)} missing; "
                            "merge needs every part (did a matrix job fail?).")
    return parts


@dataclass(frozen=True)
class Merged:
    """What `costgate merge` made: the judged report (written), the baseline it was judged against, the parts."""

    report: Document
    baseline: Document | None
    baseline_path: Path
    removed: tuple[str, ...]
    parts: int


def merge_parts(paths: list[Path], output: Path, config_path: Path | None = None,
                baseline_path: Path | None = None) -> Merged:
    """Join, judge against the baseline, write the report."""
    parts = load_parts(paths)
    first = parts[0]
    path = config_path or Path(first.config or "costgate.yaml")
    config = load_config(path)
    if config_digest(config.path) != first.config_sha256:
        raise CostgateError(f"{path} is not the config the parts were made with (its content differs); pass the "
                            "config of that commit with --config.")
    baseline_file = baseline_path or config.baseline
    baseline = read_document(baseline_file)
    total = first.shard[1]  # type: ignore[index]
    suites: dict[str, SuiteEntry] = {}
    for spec in config.suites:
        if spec.name not in first.suites:
            continue
        shards = {doc.shard[0]: doc.suites[spec.name] for doc in parts}  # type: ignore[index]
        names = {doc.shard[0]: str(p) for p, doc in zip(paths, parts)}  # type: ignore[index]
        verify_parts(spec, shards, total, baseline.suites.get(spec.name) if baseline else None, names)
        suites[spec.name] = join_and_judge(config, spec, shards, total, baseline)
    removed = removed_suites(suites, baseline)
    report = replace(document(config, suites, "report", summary(suites, baseline, removed)), git_sha=first.git_sha)
    write_json_atomic(output, report)
    return Merged(report, baseline, baseline_file, tuple(removed), len(parts))
