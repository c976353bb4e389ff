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
        "price-change": lambda f: edit(f / "costgate.yaml", "output_per_1m: 10.00", "output_per_1m: 12.00"),
        "output-growth": lambda f: edit(f / "demo_model.py", '"Thanks for reaching out. "',
                                        '"Thanks for reaching out, we are always happy to help you. "'),
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


def rows(suite: dict) -> tuple[list[str], list[list]]:
    """A stored suite's per-prompt rows (the columnar form) and their column names, to edit in place."""
    prompts = suite["prompts"]
    return prompts["columns"], prompts["rows"]


def not_comparable(folder: Path) -> None:
    baseline = json.loads((folder / "baseline.json").read_text())
    for suite in baseline["suites"].values():
        suite["fingerprint"]["cpu"] = "Intel(R) Xeon(R) Platinum 8375C"
        columns, table = rows(suite)
        for row in table:
            row[columns.index("e2e_ms")] = 0.001  # a faster machine
    (folder / "baseline.json").write_text(json.dumps(baseline))
    edit(folder / "costgate.yaml", "    monthly_cost: {warn: \"+$50\", fail: \"+$500\"}",
         "    monthly_cost: {warn: \"+$50\", fail: \"+$500\"}\n    latency_p95: {fail: \"+10%\"}")


EVIL = ["x|y `rm -rf` <script>alert(1)</script>", "@octocat please look #123", "[link](http://evil) **bold** ~~s~~"]
EVIL_TEMPLATE = "support @team #9 |x| <b>.j2"


def hostile(folder: Path) -> None:
    """Prompt ids and a template file name a pull request could choose, aimed at the comment."""
    prompts = folder / "prompts" / "support.jsonl"
    out = []
    for i, line in enumerate(prompts.read_text().splitlines()):
        record = json.loads(line)
        if i < len(EVIL):
            record["id"] = EVIL[i]
        out.append(json.dumps(record))
    prompts.write_text("\n".join(out) + "\n")
    baseline = json.loads((folder / "baseline.json").read_text())
    suite = baseline["suites"]["support-answer"]
    columns, table = rows(suite)
    for i, row in enumerate(table[: len(EVIL)]):
        row[columns.index("id")] = EVIL[i]
        row[columns.index("input_tokens")] -= 5  # so these prompts show up as grown
    suite["template_files"] = {EVIL_TEMPLATE: "0" * 16}
    (folder / "baseline.json").write_text(json.dumps(baseline))
    (folder / "templates" / "support.j2").rename(folder / "templates" / EVIL_TEMPLATE)
    edit(folder / "costgate.yaml", "template: templates/support.j2", f"template: \"templates/{EVIL_TEMPLATE}\"")
    suite["template_files"] = {f"templates/{EVIL_TEMPLATE}": "0" * 16}
    (folder / "baseline.json").write_text(json.dumps(baseline))


if __name__ == "__main__":
    main()
