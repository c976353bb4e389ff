"""Re-create the golden scenarios' input reports by running the gate on modified copies of the demo.

python tests/golden/build_reports.py   (then COSTGATE_UPDATE_GOLDEN=1 pytest tests/test_markdown.py)
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
DEMO = HERE.parent.parent / "fixtures" / "demo"
ONLY_PYTHON = "  local-answer:"  # the ONNX suite is left out: its timings would make the inputs noisy


def project(tmp: Path) -> Path:
    folder = tmp / "demo"
    shutil.copytree(DEMO, folder, ignore=shutil.ignore_patterns("__pycache__"))
    config = folder / "costgate.yaml"
    text = config.read_text()
    config.write_text(text[: text.index(ONLY_PYTHON)].replace("../onnx/", f"{DEMO.parent / 'onnx'}/"))
    baseline = json.loads((folder / "baseline.json").read_text())
    baseline["suites"].pop("local-answer", None)
    (folder / "baseline.json").write_text(json.dumps(baseline))
    return folder


def run(folder: Path, out: Path) -> None:
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--costgate",
                    "--costgate-config", str(folder / "costgate.yaml"), "--costgate-report", str(out), str(folder)],
                   cwd=folder, capture_output=True, check=False)


def edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def main() -> None:
    scenarios = {
        "all-pass": lambda f: None,
        "failing-suite": lambda f: edit(f / "templates" / "support.j2", "Answer in", "Always be polite, concise and accurate. Answer in"),
        "new-suite": lambda f: edit(f / "costgate.yaml", "  ticket-triage:", "  ticket-triage-v2:\n    model: support-bot\n    prompts: prompts/support.jsonl\n    template: templates/support.j2\n    requests_per_month: 1000\n  ticket-triage:"),
        "removed-suite": lambda f: None,  # ticket-triage is cut from the config in main()
        "no-baseline": lambda f: (f / "baseline.json").unlink(),
        "not-comparable": not_comparable,
        "hostile": hostile,
    }
    for name, change in scenarios.items():
        with tempfile.TemporaryDirectory() as tmp:
            folder = project(Path(tmp))
            if name == "removed-suite":
                text = (folder / "costgate.yaml").read_text()
                (folder / "costgate.yaml").write_text(text[: text.index("  ticket-triage:")])
            else:
                change(folder)
            run(folder, HERE / f"{name}.json")
            print(name, "ok" if (HERE / f"{name}.json").exists() else "MISSING")


def not_comparable(folder: Path) -> None:
    baseline = json.loads((folder / "baseline.json").read_text())
    for suite in baseline["suites"].values():
        suite["fingerprint"]["cpu"] = "Intel(R) Xeon(R) Platinum 8375C"
        for record in suite["prompts"].values():
            record["e2e_ms"] = 0.001  # a faster machine
    (folder / "baseline.json").write_text(json.dumps(baseline))
    edit(folder / "costgate.yaml", "    monthly_cost: {warn: \"+$50\", fail: \"+$500\"}",
         "    monthly_cost: {warn: \"+$50\", fail: \"+$500\"}\n    latency_p95: {fail: \"+10%\"}")


def hostile(folder: Path) -> None:
    prompts = folder / "prompts" / "support.jsonl"
    lines = prompts.read_text().splitlines()
    evil = ["x|y `rm -rf` <script>alert(1)</script>", "@octocat please look #123", "[link](http://evil) **bold** ~~s~~"]
    out = []
    for i, line in enumerate(lines):
        record = json.loads(line)
        if i < len(evil):
            record["id"] = evil[i]
        out.append(json.dumps(record))
    prompts.write_text("\n".join(out) + "\n")
    baseline = json.loads((folder / "baseline.json").read_text())
    suite = baseline["suites"]["support-answer"]["prompts"]
    for i, old in enumerate(list(suite)[: len(evil)]):
        record = suite.pop(old)
        record["input_tokens"] -= 5  # so these prompts show up as grown
        suite[evil[i]] = record
    baseline["suites"]["support-answer"]["prompts"] = suite
    (folder / "baseline.json").write_text(json.dumps(baseline))
    edit(folder / "costgate.yaml", "  support-answer:", "  \"support|answer @team #9 <b>\":")
    baseline["suites"]["support|answer @team #9 <b>"] = baseline["suites"].pop("support-answer")
    (folder / "baseline.json").write_text(json.dumps(baseline))


if __name__ == "__main__":
    main()
