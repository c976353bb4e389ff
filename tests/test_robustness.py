"""Issue 9: the baseline is never damaged, every bad input gets one clear line, numbers are never silently wrong."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path

import pytest

from pytest_costgate.cli import main
from pytest_costgate.config.specs import ModelSpec, TokenizerSpec
from pytest_costgate.replay.backends import Request
from pytest_costgate.replay.backends.openai import OpenAIBackend
from pytest_costgate.store.schema import read_document

ROOT = Path(__file__).parent.parent
GATE = ["--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider"]


def backend(url: str, **options) -> OpenAIBackend:
    opts = {"base_url": url, "timeout_s": 2, "max_retries": 0, **options}
    spec = ModelSpec("m", "openai", opts, TokenizerSpec("cl100k_base"), None, "costgate.yaml:3", Path("."))
    return OpenAIBackend(spec, sleep=lambda s: None)


@pytest.mark.parametrize("action", ["usage-negative", "usage-string"])
def test_implausible_server_usage_is_replaced_by_the_tokenizer_count(openai_server, action):
    from pytest_costgate.inputs.tokens import load_counter
    from pytest_costgate.replay.measure import result_from

    openai_server.default = action
    done = backend(openai_server.url).complete(Request("p", "hello there friend", {"max_tokens": 3}))
    assert done.error is None and done.token_source == "tokenizer" and "server usage ignored" in done.note
    record = result_from("p", Decimal(1), 4, done, load_counter(TokenizerSpec("cl100k_base")), None)
    assert record.token_source == "tokenizer" and record.input_tokens == 4 and record.output_tokens > 0
    assert record.note and "server usage ignored" in record.note


def test_a_python_model_reporting_absurd_counts_is_not_believed():
    from pytest_costgate.config.specs import TokenPrice
    from pytest_costgate.inputs.tokens import load_counter
    from pytest_costgate.replay.backends import Completion
    from pytest_costgate.replay.measure import result_from

    done = Completion(text="ok", input_tokens=10**15, output_tokens=-3, token_source="engine")
    record = result_from("p", Decimal(1), 7, done, load_counter(TokenizerSpec("cl100k_base")),
                         TokenPrice(Decimal(1), Decimal(1)))
    assert (record.input_tokens, record.output_tokens, record.token_source) == (7, 1, "tokenizer")
    assert record.cost == Decimal(8) / 10**6 and "not whole numbers" in record.note


def test_deadline_bounds_a_stream_of_keep_alives(openai_server):
    openai_server.default = "keepalive"
    started = time.perf_counter()
    done = backend(openai_server.url, deadline_s=0.5).complete(Request("p", "hi", {}))
    assert time.perf_counter() - started < 3 and "exceeded deadline_s=0.5s" in done.error


def test_an_endless_line_is_refused_at_its_size_limit(openai_server):
    openai_server.default = "hugeline"
    started = time.perf_counter()
    done = backend(openai_server.url).complete(Request("p", "hi", {}))
    assert time.perf_counter() - started < 10 and "a stream line is over 4 MiB" in done.error


def test_errors_half_way_are_errors_not_a_token_change(pytester, openai_server):
    """The server dies half-way: tokens compare over the prompts both sides answered; the errors fail the suite."""
    records = "".join(json.dumps({"id": f"p{i}", "vars": {"q": "word " * (i + 1)}}) + "\n" for i in range(8))
    pytester.makefile(".jsonl", prompts=records)
    pytester.makefile(".j2", t="Q: {{ q }}")
    pytester.makefile(".yaml", costgate=f"""models:
  m: {{backend: openai, base_url: "{openai_server.url}", max_retries: 0, pricing: {{input_per_1m: 1, output_per_1m: 1}}}}
suites:
  s: {{model: m, prompts: prompts.jsonl, template: t.j2, max_error_rate: 1}}
""")
    pytester.runpytest(*GATE, "--costgate-update-baseline").assert_outcomes(passed=1)
    openai_server.script.extend(["ok", "ok", "ok", "ok", "500", "500"])  # then three failures in a row trip it
    openai_server.default = "500"
    result = pytester.runpytest(*GATE, "--costgate-report", "r.json")
    result.assert_outcomes(failed=1)
    rows = {r["metric"]: r for r in json.loads((pytester.path / "r.json").read_text())["suites"]["s"]["verdict"]["rows"]}
    assert rows["input_tokens_mean"]["delta"] == "0" and rows["error_rate"]["status"] == "fail"
    result.stdout.fnmatch_lines(["*4 prompt(s) failed on one side or both: tokens and cost compared over the 4 both answered*"])


@pytest.fixture
def slow_project(pytester):
    pytester.makepyfile(slow="import os, time\ndef run(prompt, params):\n"
                                 "    time.sleep(float(os.environ.get('SLOW_S', '0.02')))\n    return 'ok ' + prompt\n")
    records = "".join(json.dumps({"id": f"p{i}", "vars": {"q": f"question {i}"}}) + "\n" for i in range(60))
    pytester.makefile(".jsonl", prompts=records)
    pytester.makefile(".j2", t="Q: {{ q }}")
    pytester.makefile(".yaml", costgate="""models:
  m: {backend: python, function: slow:run, path: ., pricing: {input_per_1m: 1, output_per_1m: 1}}
suites:
  s1: {model: m, prompts: prompts.jsonl, template: t.j2}
  s2: {model: m, prompts: prompts.jsonl, template: t.j2}
""")
    pytester.runpytest(*GATE, "--costgate-update-baseline").assert_outcomes(passed=2)
    return pytester


def test_a_time_budget_never_shrinks_the_baseline(slow_project, budget_clock):
    path = slow_project.path / "costgate-baseline.json"
    before = path.read_bytes()
    result = slow_project.runpytest(*GATE, "--costgate-update-baseline", "--costgate-time-budget", "0.3")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*ERROR: suite 's1': * prompt(s) not measured (time budget); its baseline entry was "
                                 "left as it was.*--costgate-update-partial*"])
    assert path.read_bytes() == before
    # opting in keeps the old records of the prompts this run missed
    template = slow_project.path / "t.j2"
    template.write_text("Please answer this question well: {{ q }}")
    result = slow_project.runpytest(*GATE, "--costgate-update-baseline", "--costgate-update-partial",
                                    "--costgate-time-budget", "0.3", "-k", "s1")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*suite 's1': * not measured (time budget); kept the old baseline records of * of them*"])
    doc = read_document(path)
    records = doc.suites["s1"].prompts
    assert len(records) == 60 and len(doc.suites["s2"].prompts) == 60
    remeasured = [r for r in records.values() if r.rendered_tokens != doc.suites["s2"].prompts[r.id].rendered_tokens]
    assert 0 < len(remeasured) < 60  # the measured ones are new, the rest kept from the old baseline


def test_concurrent_k_updates_both_land(slow_project):
    path = slow_project.path / "costgate-baseline.json"
    (slow_project.path / "t2.j2").write_text("Longer question now: {{ q }}")
    config = slow_project.path / "costgate.yaml"
    config.write_text(config.read_text().replace("s2: {model: m, prompts: prompts.jsonl, template: t.j2}",
                                                 "s2: {model: m, prompts: prompts.jsonl, template: t2.j2}")
                      .replace("s1: {model: m, prompts: prompts.jsonl, template: t.j2}",
                               "s1: {model: m, prompts: prompts.jsonl, template: t2.j2}"))
    env = {**os.environ, "PYTHONPATH": str(slow_project.path)}
    runs = [subprocess.Popen([sys.executable, "-m", "pytest", *GATE, "--costgate-update-baseline", "-k", name, "-q"],
                             cwd=slow_project.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for name in ("s1", "s2")]
    outputs = [run.communicate(timeout=120)[0].decode() for run in runs]
    assert all(run.returncode == 0 for run in runs), outputs
    doc = read_document(path)
    hashes = {n: doc.suites[n].template_hash for n in ("s1", "s2")}
    from pytest_costgate.inputs.render import _digest

    assert hashes == {"s1": _digest("Longer question now: {{ q }}"), "s2": _digest("Longer question now: {{ q }}")}


KILL_WRITER = textwrap.dedent("""
    import sys, itertools
    from dataclasses import replace
    from pathlib import Path
    from pytest_costgate.config.loader import load_config
    from pytest_costgate.gate.update import update_baseline
    from pytest_costgate.store.schema import read_document

    config = load_config(Path(sys.argv[1]))
    doc = read_document(config.baseline)
    entry = doc.suites["s1"]
    print("ready", flush=True)
    for i in itertools.count():
        update_baseline(config, {"s1": replace(entry, repeats=1 + i % 7)}, False)
""")


def test_kill_9_during_updates_never_tears_the_baseline(slow_project, tmp_path):
    """25 kills at random moments: each time the file holds the old or a complete new baseline."""
    path = slow_project.path / "costgate-baseline.json"
    writer = tmp_path / "writer.py"
    writer.write_text(KILL_WRITER)
    rng = random.Random(9)
    for _ in range(25):
        proc = subprocess.Popen([sys.executable, str(writer), str(slow_project.path / "costgate.yaml")],
                                stdout=subprocess.PIPE, cwd=slow_project.path)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 0.15))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        doc = read_document(path)  # parses: never torn
        assert len(doc.suites["s1"].prompts) == 60 and len(doc.suites["s2"].prompts) == 60
    slow_project.runpytest(*GATE, "--costgate-update-baseline", "-k", "s2").assert_outcomes(passed=1)
    assert not list(slow_project.path.glob(".costgate-baseline.json.*")), "stale temp files are cleaned up"


def test_an_unwritable_path_fails_the_session_even_as_root(pytester, demo):
    (demo / "taken").write_text("a file, not a folder")
    result = pytester.runpytest(*GATE, "--costgate-report", "taken/r.json", "--costgate-markdown", "taken/m.md")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*costgate: ERROR: could not write the report to *taken/r.json*",
                                 "*costgate: ERROR: could not write the markdown to *taken/m.md*"])
    base = demo / "baseline.json"
    base.unlink()
    base.mkdir()  # the baseline path is a folder: the update can't land
    result = pytester.runpytest(*GATE, "--costgate-update-baseline")
    assert result.ret != pytest.ExitCode.OK


@pytest.mark.parametrize("args, message", [
    (["--costgate-markdown-template", "missing.j2"], "*--costgate-markdown-template *missing.j2: no such file*"),
    (["--costgate-baseline", "typo.json"], "*--costgate-baseline typo.json: no such file*--costgate-update-baseline*"),
    (["--costgate-update-partial"], "*--costgate-update-partial only applies with --costgate-update-baseline*"),
])
def test_usage_errors(pytester, demo, args, message):
    result = pytester.runpytest(*GATE, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_an_explicit_missing_baseline_is_fine_when_creating_it(pytester, demo):
    pytester.runpytest(*GATE, "--costgate-baseline", "new.json", "--costgate-update-baseline").assert_outcomes(passed=3)
    assert read_document(demo / "new.json") is not None


def test_skipped_costgate_items_do_not_crash(pytester, demo):
    pytester.makeconftest("""
import pytest
def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.skip(reason="not today"))
""")
    result = pytester.runpytest(*GATE, "-rs")
    result.assert_outcomes(skipped=3)
    result.stdout.no_fnmatch_line("*INTERNALERROR*")


def test_a_template_that_never_ends_is_stopped(pytester, demo, monkeypatch):
    monkeypatch.setenv("COSTGATE_RENDER_TIMEOUT_S", "0.3")
    (demo / "templates" / "support.j2").write_text(
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}")
    started = time.perf_counter()
    result = pytester.runpytest(*GATE, "-k", "support")
    assert time.perf_counter() - started < 20
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*support.j2: rendering prompt 'support-000' took over 0.3s*nested loops*"])


def test_onnx_folder_without_metadata_says_so(tmp_path):
    from pytest_costgate.replay.backends.onnx import OnnxBackend
    from pytest_costgate.safety.errors import BackendError

    folder = tmp_path / "bare"
    folder.mkdir()
    for name in ("model.onnx", "tokenizer.json"):
        shutil.copy(ROOT / "fixtures" / "onnx" / "llama-tiny" / name, folder / name)

    def spec(**options):
        return ModelSpec("m", "onnx", {"path": str(folder), "provider": "cpu", **options}, TokenizerSpec(),
                         None, "costgate.yaml:3", tmp_path)

    with pytest.raises(BackendError, match="names no end-of-sequence token.*eos_token_id: N"):
        OnnxBackend(spec())
    assert OnnxBackend(spec(eos_token_id="none")).eos == frozenset()
    reference = OnnxBackend(ModelSpec("m", "onnx", {"path": str(ROOT / "fixtures" / "onnx" / "llama-tiny"),
                                                    "provider": "cpu"}, TokenizerSpec(), None, "x", tmp_path))
    eos_id = min(reference.eos)
    token = reference.tokenizer.id_to_token(eos_id)
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": {"content": token}}))
    assert OnnxBackend(spec()).eos == frozenset({eos_id})
    with pytest.raises(BackendError, match="eos_token_id: expected a token id"):
        OnnxBackend(spec(eos_token_id="soon"))


def test_cli_refuses_a_baseline_where_a_report_is_needed(tmp_path, capsys):
    baseline = ROOT / "fixtures" / "demo" / "baseline.json"
    assert main(["comment", str(baseline)]) == 2
    assert "is a baseline (suites measured, not judged" in capsys.readouterr().err
    assert main(["show", str(baseline)]) == 0  # a baseline can still be shown as a table
    damaged = tmp_path / "r.json"
    damaged.write_text(json.dumps({"schema": "costgate/1", "kind": "report", "summary": {"monthly_delta": "NaN"},
                                   "suites": {}}))
    assert main(["comment", str(damaged)]) == 2
    assert "summary.monthly_delta: expected a finite decimal" in capsys.readouterr().err


def test_written_files_follow_the_umask(pytester, demo):
    old = os.umask(0o022)
    try:
        pytester.runpytest(*GATE, "--costgate-report", "r.json", "--costgate-markdown", "m.md").assert_outcomes(passed=3)
    finally:
        os.umask(old)
    for name in ("r.json", "m.md"):
        assert (demo / name).stat().st_mode & 0o777 == 0o644


def test_benchmark_only_skips_the_gate_cleanly(pytester, demo, monkeypatch):
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT"):  # else pytest-benchmark disables itself
        monkeypatch.delenv(name, raising=False)
    result = pytester.runpytest(*GATE, "--benchmark-only")
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)


def test_an_interim_1xx_answer_is_refused_and_never_shifts_answers(openai_server):
    openai_server.default = "early-1xx"
    client = backend(openai_server.url)
    first = client.complete(Request("a", "alpha beta", {}))
    second = client.complete(Request("b", "gamma delta epsilon", {}))
    assert "interim HTTP 102" in first.error and "interim HTTP 102" in second.error
    openai_server.default = "ok"
    third = client.complete(Request("c", "zeta eta", {}))
    assert third.error is None and third.text.startswith("Answer: zeta eta")  # its own answer, not a leftover


def test_deadline_cuts_a_server_that_trickles_its_headers(openai_server):
    openai_server.default = "trickle-headers"
    started = time.perf_counter()
    done = backend(openai_server.url, timeout_s=5, deadline_s=1).complete(Request("p", "hi", {}))
    assert time.perf_counter() - started < 4 and "exceeded deadline_s=1s" in done.error


def test_a_python_model_reporting_odd_timings_never_breaks_the_run(pytester):
    pytester.makepyfile(odd="def run(prompt, params):\n    return {'text': 'ok', 'ttft_ms': 5000}\n")
    pytester.makefile(".jsonl", prompts='{"id": "a", "prompt": "hi"}\n')
    pytester.makefile(".yaml", costgate="models:\n  m: {backend: python, function: odd:run, path: .}\n"
                                        "suites:\n  s: {model: m, prompts: prompts.jsonl}\n")
    result = pytester.runpytest(*GATE, "--costgate-report", "r.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*time to first token 5000.0 ms reported after the whole answer*dropped*"])


def test_money_near_the_limits_is_formatted_not_crashed(pytester):
    pytester.makepyfile(echo="def run(prompt, params):\n    return 'ok ' + prompt\n")
    pytester.makefile(".jsonl", prompts='{"id": "a", "prompt": "hello there"}\n')
    pytester.makefile(".yaml", costgate="""models:
  m: {backend: python, function: echo:run, path: ., pricing: {input_per_1m: 999999999999, output_per_1m: 999999999999}}
suites:
  s: {model: m, prompts: prompts.jsonl, requests_per_month: 999999999999}
""")
    for _ in range(2):
        result = pytester.runpytest(*GATE, "--costgate-update-baseline", "--costgate-report", "r.json",
                                    "--costgate-markdown", "m.md")
        assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert main(["show", str(pytester.path / "r.json")]) == 0


def test_tokens_only_never_writes_a_baseline(pytester, demo):
    result = pytester.runpytest(*GATE, "--costgate-tokens-only", "--costgate-update-baseline")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--costgate-tokens-only calls no model*update the baseline with a replay*"])


def test_a_single_file_for_an_encoding_built_from_two_says_so(tmp_path):
    from pytest_costgate.inputs.tokens import load_counter
    from pytest_costgate.safety.errors import TokenizerError

    bogus = tmp_path / "gpt2.tiktoken"
    bogus.write_text("x")
    with pytest.raises(TokenizerError, match="built from two data-gym files"):
        load_counter(TokenizerSpec(encoding="gpt2", file=bogus))


def test_an_interrupted_update_leaves_the_baseline(slow_project):
    path = slow_project.path / "costgate-baseline.json"
    (slow_project.path / "t.j2").write_text("Changed: {{ q }}")
    before = path.read_bytes()
    # 60 x 0.1 s a suite: s2 is surely still running when the interrupt lands, however slow the machine
    env = {**os.environ, "PYTHONPATH": str(slow_project.path), "SLOW_S": "0.1"}
    run = subprocess.Popen([sys.executable, "-m", "pytest", *GATE, "--costgate-update-baseline", "-v"],
                           cwd=slow_project.path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen = b""
    while b"::s1 PASSED" not in seen:  # s1 is done, s2 (60 x 0.1 s) is running
        line = run.stdout.readline()
        assert line, seen.decode()
        seen += line
    run.send_signal(signal.SIGINT)
    output = seen.decode() + run.communicate(timeout=60)[0].decode()
    assert run.returncode == pytest.ExitCode.INTERRUPTED, output
    assert "the run was interrupted; the baseline was left as it was" in output
    assert path.read_bytes() == before


def test_collect_only_writes_nothing(pytester, demo):
    result = pytester.runpytest(*GATE, "--co", "--costgate-report", "r.json", "--costgate-markdown", "m.md")
    result.stdout.fnmatch_lines(["*no suite ran; nothing was written*"])
    assert not (demo / "r.json").exists() and not (demo / "m.md").exists()


def test_a_device_is_not_read_as_a_report(capsys):
    assert main(["show", "/dev/zero"]) == 2
    assert "not a regular file" in capsys.readouterr().err


def test_yaml_merge_keys_work_in_the_config(pytester, demo):
    config = demo / "costgate.yaml"
    text = config.read_text().replace("  local-llama:\n", "  alias-bot:\n    <<: *bot\n    pricing: {input_per_1m: 1, "
                                      "output_per_1m: 1}\n\n  local-llama:\n").replace(
        "  support-bot:\n    backend: python\n", "  support-bot: &bot\n    backend: python\n")
    config.write_text(text)
    from pytest_costgate.config.loader import load_config

    models = load_config(config).models
    assert models["alias-bot"].options["function"] == "demo_model:answer"
    assert models["alias-bot"].pricing.input_per_1m == 1


def test_a_markdown_template_that_never_ends_or_raises(pytester, demo, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("COSTGATE_RENDER_TIMEOUT_S", "0.05")
    endless = demo / "endless.j2"
    endless.write_text("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}")
    started = time.perf_counter()
    result = pytester.runpytest(*GATE, "-k", "support", "--costgate-markdown", "m.md",
                                "--costgate-markdown-template", "endless.j2")
    assert time.perf_counter() - started < 30 and result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*could not render the Markdown diff*rendering took over 0.5s*"])
    broken = tmp_path / "broken.j2"
    broken.write_text("{{ 1/0 }}")
    report = ROOT / "tests" / "golden" / "failing-suite.json"
    assert main(["diff", str(report), str(report), "--template", str(broken)]) == 2
    assert "rendering failed: ZeroDivisionError" in capsys.readouterr().err


@pytest.mark.parametrize("damage, message", [
    (lambda d: d["suites"]["support-answer"]["verdict"]["rows"][0].update(delta=-1), None),
    (lambda d: d["summary"].update(status=[]), "summary.status: expected one of"),
])
def test_damaged_reports_that_pass_the_schema_do_not_crash_the_cli(tmp_path, capsys, damage, message):
    doc = json.loads((ROOT / "tests" / "golden" / "failing-suite.json").read_text())
    damage(doc)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(doc))
    code = main(["show", str(path)])
    err = capsys.readouterr().err
    assert (code == 0 and message is None) or (code == 2 and message in err), err
    assert "Traceback" not in err


def test_against_skips_absolute_symlinks_elsewhere_in_the_repository(pytester, demo):
    def git(*args):
        subprocess.run(["git", *args], cwd=demo, check=True, capture_output=True)

    (demo / "elsewhere").symlink_to("/etc/hostname")
    git("init", "-q")
    git("-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    result = pytester.runpytest(*GATE, "--costgate-against", "HEAD", "-k", "triage")
    result.assert_outcomes(passed=1)


def test_prompt_set_errors_come_in_file_order_and_name_their_line_across_blocks(tmp_path):
    from pytest_costgate.inputs.prompts import BLOCK, load_prompt_set
    from pytest_costgate.safety.errors import PromptSetError

    path = tmp_path / "p.jsonl"

    def line(i: int, text: str = "y" * 100) -> bytes:
        return json.dumps({"id": f"p{i}", "vars": {"x": text}}).encode()

    bad_utf8 = b'{"id": "late", "vars": {"x": "\xff"}}'
    # bad UTF-8 later in the same block as a JSON error or a duplicate id: the first error in the file is the one
    path.write_bytes(b"\n".join([line(0), b"{bad", line(2), bad_utf8]) + b"\n")
    with pytest.raises(PromptSetError, match=r"p\.jsonl:2: not valid JSON"):
        load_prompt_set(path)
    path.write_bytes(b"\n".join([line(0), line(0), bad_utf8]) + b"\n")
    with pytest.raises(PromptSetError, match=r"p\.jsonl:2: duplicate id 'p0' \(first on line 1\)"):
        load_prompt_set(path)
    # past a block boundary (CRLF lines, no newline at the end) a bad line is still named by its number
    many = BLOCK // len(line(0)) + 50
    body = b"\r\n".join(line(i) for i in range(many))
    path.write_bytes(body + b"\r\n" + bad_utf8)
    with pytest.raises(PromptSetError, match=rf"p\.jsonl:{many + 1}: not UTF-8 text"):
        load_prompt_set(path)
    path.write_bytes(body.replace(line(many - 3), bad_utf8) + b"\r\n")
    with pytest.raises(PromptSetError, match=rf"p\.jsonl:{many - 2}: not UTF-8 text"):
        load_prompt_set(path)
    path.write_bytes(body)
    assert len(load_prompt_set(path).records) == many


@pytest.mark.parametrize("form", ["rows", "columns"])
def test_a_stored_prompt_with_a_null_id_is_a_located_error(tmp_path, form):
    from decimal import Decimal

    from pytest_costgate.safety.errors import BaselineError
    from pytest_costgate.store.document import Document, Metrics, SuiteEntry
    from pytest_costgate.store.records import ROWS_LIMIT, PromptResult
    from pytest_costgate.store.schema import read_document
    from pytest_costgate.store.write import dumps_document

    n = 3 if form == "rows" else ROWS_LIMIT + 1
    prompts = {f"p{i}": PromptResult(f"p{i}", Decimal(1), 5, input_tokens=5) for i in range(n)}
    entry = SuiteEntry("m", "python", "replay", None, {}, "t", None, None, {}, Metrics(), prompts=prompts)
    data = json.loads(dumps_document(Document(suites={"s": entry}, kind="baseline").to_json()))
    stored = data["suites"]["s"]["prompts"]
    if form == "rows":
        stored["rows"][1][0] = None
    else:
        stored["data"][0][1] = None
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BaselineError, match=r"suites\.s\.prompts\.rows\[1\]\.id: expected a prompt id, got null"):
        read_document(path)
