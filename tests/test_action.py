"""Run action.yml's steps as the Actions runner would, against the demo and a loopback GitHub."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from github_server import FakeGitHub

ROOT = Path(__file__).parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
TOKEN = "ghs_actionTOKEN42"


def run_action(workspace: Path, env: dict[str, str], **given: str) -> tuple[int, dict[str, str], str]:
    """Execute the composite steps in order; returns (job exit code, action outputs, log)."""
    inputs = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
    inputs["github-token"] = TOKEN
    inputs.update(given)
    outputs: dict[str, dict[str, str]] = {}

    def evaluate(expression: str) -> str:
        e = expression.strip()
        if "&&" in e:
            return str(all(evaluate(part) == "true" for part in e.split("&&"))).lower()
        if e == "always()":
            return "true"
        if m := re.fullmatch(r"inputs\.([\w-]+) == '([^']*)'", e):
            return str(inputs[m.group(1)] == m.group(2)).lower()
        if m := re.fullmatch(r"inputs\.([\w-]+)", e):
            return inputs[m.group(1)]
        if m := re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", e):
            return outputs.get(m.group(1), {}).get(m.group(2), "")
        if e == "github.action_path":
            return str(ROOT)
        raise AssertionError(f"expression not understood by this runner: {e}")

    def sub(text: str) -> str:
        return re.sub(r"\$\{\{(.*?)\}\}", lambda m: evaluate(m.group(1)), str(text))

    failed, log = False, ""
    for index, step in enumerate(ACTION["runs"]["steps"]):
        condition = sub(step["if"]) if "if" in step else ("false" if failed else "true")
        if condition != "true" or (failed and "always()" not in step.get("if", "")):
            continue
        out_file = workspace.parent / f"output-{index}"
        out_file.write_text("")
        script = workspace.parent / f"step-{index}.sh"
        script.write_text(step["run"])
        step_env = {**os.environ, **env, "GITHUB_OUTPUT": str(out_file),
                    **{k: sub(v) for k, v in (step.get("env") or {}).items()}}
        cwd = workspace / sub(step.get("working-directory", "."))
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=cwd,
                              env=step_env, capture_output=True, text=True, timeout=300)
        log += f"--- {step['name']} (exit {done.returncode})\n{done.stdout}{done.stderr}"
        outputs[step.get("id", str(index))] = dict(
            line.split("=", 1) for line in out_file.read_text().splitlines() if "=" in line)
        failed = failed or done.returncode != 0
    action_outputs = {name: sub(spec["value"]) for name, spec in ACTION["outputs"].items()}
    return (1 if failed else 0), action_outputs, log


@pytest.fixture
def workspace(tmp_path):
    space = tmp_path / "repo"
    shutil.copytree(ROOT / "fixtures" / "demo", space, ignore=shutil.ignore_patterns("__pycache__"))
    config = space / "costgate.yaml"
    config.write_text(config.read_text().replace("../onnx/", f"{ROOT / 'fixtures' / 'onnx'}/"))
    return space


@pytest.fixture
def github_env(tmp_path):
    server = FakeGitHub()
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "opened", "number": 7, "pull_request": {"number": 7}}))
    (tmp_path / "runner-temp").mkdir()
    env = {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event),
           "GITHUB_REPOSITORY": "acme/app", "GITHUB_API_URL": server.url, "RUNNER_TEMP": str(tmp_path / "runner-temp"),
           "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    yield server, env
    server.close()


def test_passing_gate(workspace, github_env):
    server, env = github_env
    code, outputs, log = run_action(workspace, env, install="false")
    assert code == 0, log
    assert outputs["verdict"] == "pass" and outputs["monthly-delta-usd"] == "0"
    assert json.loads(Path(outputs["report-path"]).read_text())["schema"] == "costgate/1"
    assert len(server.comments) == 1 and "monthly unchanged at" in server.comments[0]["body"]
    assert TOKEN not in log


def test_failing_gate_still_comments_then_fails(workspace, github_env):
    server, env = github_env
    template = workspace / "templates" / "support.j2"
    template.write_text("Please always answer with great care and detail. " + template.read_text())
    code, outputs, log = run_action(workspace, env, install="false")
    assert code == 1, log
    assert outputs["verdict"] == "fail" and float(outputs["monthly-delta-usd"]) > 0
    assert len(server.comments) == 1 and "suites failed — monthly +$" in server.comments[0]["body"]
    assert "costgate verdict: fail" in log
    code, outputs, _ = run_action(workspace, env, install="false", **{"fail-on-breach": "false"})
    assert code == 0 and outputs["verdict"] == "fail"
    assert len(server.comments) == 1  # the sticky comment was updated, not duplicated


def test_broken_config_is_an_error_verdict(workspace, github_env):
    server, env = github_env
    (workspace / "costgate.yaml").write_text("models: [\n")
    server.add("<!-- costgate-comment: costgate.yaml -->\nthe last good cost diff")
    code, outputs, log = run_action(workspace, env, install="false")
    assert code != 0 and outputs["verdict"] == "error"
    assert "not valid YAML" in log
    # the sticky comment now says the gate could not run, with the first error line: no stale diff, no empty table
    assert len(server.comments) == 1
    body = server.comments[0]["body"]
    assert "costgate could not run" in body and "not valid YAML" in body and "the last good cost diff" not in body


def test_pytest_args_are_split_with_shell_quoting(workspace, github_env):
    server, env = github_env
    code, outputs, log = run_action(workspace, env, install="false", **{"pytest-args": '-k "support or triage" -q'})
    assert code == 0, log
    assert "2 passed, 1 deselected" in log and outputs["verdict"] == "pass"
    code, outputs, log = run_action(workspace, env, install="false", **{"pytest-args": '-k "unbalanced'})
    assert code != 0 and outputs["verdict"] == "error" and "not valid shell quoting" in log


def test_outputs_take_only_known_shapes_from_the_report(workspace, github_env, tmp_path):
    """A report is written from pull-request inputs: its values must not forge action outputs."""
    server, env = github_env
    code, outputs, log = run_action(workspace, env, install="false")
    report = Path(outputs["report-path"])
    doc = json.loads(report.read_text())
    doc["summary"].update(status="pass\nverdict=fail", monthly_delta="1\nforged=1")
    step = next(s for s in ACTION["runs"]["steps"] if s.get("id") == "gate")
    script = step["run"].split("<<'PY'\n", 1)[1].rsplit("PY", 1)[0]
    report.write_text(json.dumps(doc))
    done = subprocess.run([sys.executable, "-", str(report), "0"], input=script.replace("\n        ", "\n").strip(),
                          capture_output=True, text=True)
    assert done.stdout.splitlines() == ["verdict=pass", "monthly-delta-usd="]


def test_two_gates_in_one_repository_keep_two_comments(tmp_path, github_env):
    """A monorepo: the action used twice, with working-directory services/a and services/b."""
    server, env = github_env
    repo = tmp_path / "mono"
    for name in ("a", "b"):
        space = repo / "services" / name
        shutil.copytree(ROOT / "fixtures" / "demo", space, ignore=shutil.ignore_patterns("__pycache__"))
        config = space / "costgate.yaml"
        config.write_text(config.read_text().replace("../onnx/", f"{ROOT / 'fixtures' / 'onnx'}/"))
    for name in ("a", "b", "a"):
        code, _, log = run_action(repo, env, install="false", **{"working-directory": f"services/{name}",
                                                                  "pytest-args": "-k support"})
        assert code == 0, log
    assert len(server.comments) == 2
    assert {c["body"].splitlines()[0] for c in server.comments} == {
        "<!-- costgate-comment: services/a/costgate.yaml -->", "<!-- costgate-comment: services/b/costgate.yaml -->"}


def test_a_matrix_of_shards_then_a_merge_job(workspace, github_env, tmp_path):
    server, env = github_env
    parts = tmp_path / "parts"
    parts.mkdir()
    for k in (1, 2):
        code, outputs, log = run_action(workspace, env, install="false", shard=f"{k}/2")
        assert code == 0 and outputs["verdict"] == "partial", log
        shutil.copy(outputs["report-path"], parts / f"part-{k}.json")  # actions/upload-artifact, in a real matrix
    assert server.comments == []  # shards post nothing
    code, outputs, log = run_action(workspace, env, install="false", mode="merge", parts=str(parts / "*.json"))
    assert code == 0 and outputs["verdict"] == "pass", log
    assert "merged 2 parts" in log
    assert len(server.comments) == 1 and "monthly unchanged at" in server.comments[0]["body"]
    code, outputs, log = run_action(workspace, env, install="false", mode="merge", parts=str(tmp_path / "none" / "*.json"))
    assert code != 0 and outputs["verdict"] == "error" and "no partial reports match" in log
