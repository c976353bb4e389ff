"""pytest-benchmark-compatible JSON: one benchmark per suite and latency metric, for existing dashboards."""
from __future__ import annotations

import platform
from typing import Any

from ..store.document import Document

SAMPLES = {"e2e": "e2e_ms", "ttft": "ttft_ms", "tpot": "tpot_ms"}


def benchmark_document(report: Document) -> dict[str, Any]:
    """The shape `pytest --benchmark-json` writes, with pytest-benchmark's own statistics (in seconds)."""
    import pytest_benchmark
    from pytest_benchmark.stats import Stats

    benchmarks = []
    for name, entry in report.suites.items():
        records = [r for r in entry.prompts.values() if r.error is None]
        for metric, field in SAMPLES.items():
            values: list[float] = []
            for record in records:
                if metric == "e2e" and record.e2e_runs:
                    values += record.e2e_runs  # every repeat counts as a round
                elif getattr(record, field) is not None:
                    values.append(getattr(record, field))
            if not values:
                continue
            stats = Stats()
            for value in values:
                stats.update(value / 1000)
            benchmarks.append({
                "group": name, "name": f"{name}[{metric}]", "fullname": f"{report.config}::{name}[{metric}]",
                "params": {"metric": metric}, "param": metric,
                "extra_info": {k: v for k, v in entry.metrics.to_json().items() if k not in ("latency_p50", "latency_p95")},
                "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": 1, "max_time": 0.0,
                            "min_time": 0.0, "warmup": False},
                "stats": {**stats.as_dict(), "iterations": 1},  # one request per round
            })
    env = report.environment
    return {
        "machine_info": {"node": platform.node(), "processor": env.get("cpu", platform.processor()),
                         "machine": env.get("machine", platform.machine()), "python_implementation":
                         platform.python_implementation(), "python_version": env.get("python", platform.python_version()),
                         "python_compiler": platform.python_compiler(), "release": platform.release(),
                         "system": env.get("os", platform.system()), "cpu": {"count": env.get("cpus")}},
        "commit_info": {"id": report.git_sha, "dirty": None, "project": "costgate"},
        "benchmarks": benchmarks, "datetime": report.created, "version": pytest_benchmark.__version__,
    }
