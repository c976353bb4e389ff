"""Issue 10: concurrent API replay, shards, incremental replay and progress."""
from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openai_server import FakeOpenAI

from pytest_costgate.config.specs import ModelSpec, TokenizerSpec, TokenPrice
from pytest_costgate.inputs.tokens import load_counter
from pytest_costgate.replay.backends import Request
from pytest_costgate.replay.backends.openai import OpenAIBackend
from pytest_costgate.replay.measure import replay

GATE = ["--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider"]


def api(url: str, **options) -> OpenAIBackend:
    opts = {"base_url": url, "max_retries": 3, "backoff_s": 0.01, **options}
    return OpenAIBackend(ModelSpec("m", "openai", opts, TokenizerSpec("cl100k_base"), None, "x", Path(".")))


def requests(n: int) -> list:
    return [(Request(f"p{i}", f"question number {i} about refunds", {"max_tokens": 4}), 8, Decimal(1)) for i in range(n)]


@pytest.fixture
def slow_server():
    server = FakeOpenAI(delay_s=0.05)
    yield server
    server.close()


def test_concurrency_keeps_n_in_flight_and_times_each_request(slow_server):
    counter = load_counter(TokenizerSpec("cl100k_base"))
    price = TokenPrice(Decimal(1), Decimal(2))
    serial, serial_wall = replay(api(slow_server.url), requests(32), counter, price)
    slow_server.max_in_flight = 0
    parallel, parallel_wall = replay(api(slow_server.url, concurrency=8), requests(32), counter, price)
    assert 8 <= slow_server.max_in_flight <= 9  # the server counts a request until its last write returns
    assert parallel_wall < serial_wall / 4
    # each request is timed on its own: about the server's 50 ms, not the queue before it
    assert all(40 < r.e2e_ms < 400 for r in parallel)
    assert [(r.id, r.input_tokens, r.output_tokens, r.cost) for r in parallel] == \
        [(r.id, r.input_tokens, r.output_tokens, r.cost) for r in serial]


def test_a_429_holds_back_every_worker(slow_server):
    slow_server.script.extend(["429-wait"])
    client = api(slow_server.url, concurrency=4)
    counter = load_counter(TokenizerSpec("cl100k_base"))
    started = time.monotonic()
    results, _ = replay(client, requests(12), counter, None)
    assert all(r.error is None for r in results)
    first_429 = slow_server.requests[0]["at"]
    # after the 429 (Retry-After 0.5 s), no request was sent inside the wait except those already in flight
    sent_during = [r for r in slow_server.requests[1:] if first_429 + 0.1 < r["at"] < first_429 + 0.45]
    assert len(sent_during) <= 3, [round(r["at"] - started, 3) for r in slow_server.requests]


def test_max_requests_per_s_paces_every_worker(slow_server):
    counter = load_counter(TokenizerSpec("cl100k_base"))
    replay(api(slow_server.url, concurrency=8, max_requests_per_s=40), requests(20), counter, None)
    times = sorted(r["at"] for r in slow_server.requests)
    assert times[-1] - times[0] >= 19 / 40 * 0.9


def test_errors_are_counted_the_same_with_concurrency(slow_server):
    slow_server.default = "401"
    counter = load_counter(TokenizerSpec("cl100k_base"))
    results, _ = replay(api(slow_server.url, concurrency=4, max_retries=0), requests(10), counter, None)
    assert all(r.error for r in results) and len(results) == 10
    sent = len(slow_server.requests)
    assert sent <= 3 + 4  # three failures in a row trip the rest (plus what was already in flight)


def test_concurrency_is_reported(pytester, slow_server):
    records = "".join(json.dumps({"id": f"p{i}", "vars": {"q": f"question {i}"}}) + "\n" for i in range(16))
    pytester.makefile(".jsonl", prompts=records)
    pytester.makefile(".j2", t="Q: {{ q }}")
    pytester.makefile(".yaml", costgate=f"""models:
  m: {{backend: openai, base_url: "{slow_server.url}", concurrency: 8, pricing: {{usd_per_hour: 3.6}}}}
suites:
  s: {{model: m, prompts: prompts.jsonl, template: t.j2}}
""")
    pytester.runpytest(*GATE, "--costgate-report", "r.json").assert_outcomes(passed=1)
    entry = json.loads((pytester.path / "r.json").read_text())["suites"]["s"]
    assert entry["concurrency"] == 8 and entry["requests_per_s"] > 30
    # GPU time is shared: the per-request charges add up to about the replay's wall time
    from conftest import records as rows

    busy = sum(r["busy_ms"] for r in rows(entry).values())
    assert busy == pytest.approx(entry["wall_s"] * 1000, rel=0.25)


@pytest.mark.parametrize("value", [0, 2000, "8", True])
def test_concurrency_is_checked_at_config_load(pytester, value):
    pytester.makefile(".jsonl", prompts='{"id": "a", "prompt": "x"}\n')
    pytester.makefile(".yaml", costgate=f"models:\n  m: {{backend: python, function: 'x:y', concurrency: {json.dumps(value)}}}"
                                        "\nsuites:\n  s: {model: m, prompts: prompts.jsonl}\n")
    result = pytester.runpytest(*GATE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*models.m.concurrency: expected*1 to 1024*"])


def test_progress_lines_plain_and_tty():
    from pytest_costgate.replay.progress import Progress

    now = [0.0]
    seen: list[tuple[str, bool]] = []
    plain = Progress("s", lambda text, final: seen.append((text, final)), tty=False, clock=lambda: now[0])
    for done in range(1, 101):
        now[0] = done * 0.5  # 50 s in all: a line every 15 s, then the final one
        plain(done, 100, done // 50, done * 10)
    assert [final for _, final in seen] == [False, False, False, True]
    assert seen[0][0] == "costgate s: 30/100 requests, 2.0/s, 20 tok/s, 0 errors, ETA 35s"
    assert seen[-1][0].endswith("2 errors, done in 50s")
    quick: list[tuple[str, bool]] = []
    fast = Progress("q", lambda text, final: quick.append((text, final)), tty=True, clock=lambda: 0.1)
    fast(10, 10, 0, 0)
    assert quick == []  # a suite done within the first second shows nothing


def test_collected_count_includes_the_suites(pytester, demo):
    result = pytester.runpytest(*GATE, "-k", "support or triage")
    result.stdout.fnmatch_lines(["collected 3 items / 1 deselected / 2 selected"])
    result = pytester.runpytest(*GATE, "--co", "-q")
    result.stdout.fnmatch_lines(["costgate.yaml::support-answer", "*3 tests collected*"])


def test_progress_shows_in_a_long_run(pytester, monkeypatch):
    ticks = iter(range(0, 10**6, 5))  # a fake clock: 5 s pass between two looks, however fast the machine is
    monkeypatch.setattr("pytest_costgate.replay.progress.CLOCK", lambda: float(next(ticks)))
    pytester.makepyfile(slow="def run(prompt, params):\n    return 'ok'\n")
    pytester.makefile(".jsonl", prompts="".join(json.dumps({"id": f"p{i}", "prompt": "x"}) + "\n" for i in range(12)))
    pytester.makefile(".yaml", costgate="models:\n  m: {backend: python, function: slow:run, path: .}\n"
                                        "suites:\n  s: {model: m, prompts: prompts.jsonl}\n")
    result = pytester.runpytest(*GATE)
    result.stdout.fnmatch_lines(["costgate s: */12 requests, *ETA*", "costgate s: 12/12 requests*done in*"])
    quiet = pytester.runpytest(*GATE, "-q")
    quiet.stdout.no_fnmatch_line("costgate s: *")


def incremental_project(pytester, url: str, suites: int = 3, prompts: int = 6) -> None:
    records = "".join(json.dumps({"id": f"p{i}", "vars": {"q": f"question {i} about refunds"}}) + "\n"
                      for i in range(prompts))
    pytester.makefile(".jsonl", prompts=records)
    body = f"models:\n  m: {{backend: openai, base_url: \"{url}\", pricing: {{input_per_1m: 1, output_per_1m: 2}}}}\n" \
           "suites:\n"
    for n in range(suites):
        (pytester.path / f"t{n}.j2").write_text(f"Template {n}. Q: {{{{ q }}}}")
        body += f"  s{n}: {{model: m, prompts: prompts.jsonl, template: t{n}.j2, replay: changed}}\n"
    pytester.makefile(".yaml", costgate=body)


def test_incremental_replay_sends_only_what_changed(pytester, openai_server):
    incremental_project(pytester, openai_server.url)
    pytester.runpytest(*GATE, "--costgate-update-baseline").assert_outcomes(passed=3)
    assert len(openai_server.requests) == 18
    openai_server.requests.clear()
    result = pytester.runpytest(*GATE, "--costgate-report", "r.json")  # nothing changed: nothing is sent
    result.assert_outcomes(passed=3)
    assert openai_server.requests == []
    (pytester.path / "t1.j2").write_text("Template 1, now with a longer preamble for every prompt. Q: {{ q }}")
    records = (pytester.path / "prompts.jsonl").read_text()
    (pytester.path / "prompts.jsonl").write_text(records.rstrip("\n") + "\n" + json.dumps({"id": "new", "vars": {"q": "fresh"}}) + "\n")
    result = pytester.runpytest(*GATE, "--costgate-report", "r.json")
    sent = [(r["body"]["messages"][0]["content"]) for r in openai_server.requests]
    # s1: its six changed prompts and the new one; s0 and s2: only the new prompt
    assert len(sent) == 7 + 1 + 1 and sum("longer preamble" in text for text in sent) == 7
    result.stdout.fnmatch_lines(["*incremental replay: 1 of 7 prompts replayed (changed or new), 6 reused*"])
    report = json.loads((pytester.path / "r.json").read_text())
    from conftest import records as rows

    s0 = rows(report["suites"]["s0"])
    assert s0["p0"]["reused"] is True and "e2e_ms" not in s0["p0"] and s0["new"].get("reused") is False
    assert report["suites"]["s0"]["latency"]["e2e_ms"]["n"] == 1  # only the replayed prompt is timed
    assert report["suites"]["s1"]["verdict"]["status"] == "fail"  # its input tokens grew


def test_changed_only_flag_and_model_changes_replay_everything(pytester, openai_server):
    incremental_project(pytester, openai_server.url, suites=1)
    config = pytester.path / "costgate.yaml"
    config.write_text(config.read_text().replace(", replay: changed", ""))
    pytester.runpytest(*GATE, "--costgate-update-baseline").assert_outcomes(passed=1)
    openai_server.requests.clear()
    pytester.runpytest(*GATE).assert_outcomes(passed=1)
    assert len(openai_server.requests) == 6  # replay: full (the default) sends everything
    openai_server.requests.clear()
    pytester.runpytest(*GATE, "--costgate-changed-only").assert_outcomes(passed=1)
    assert openai_server.requests == []
    config.write_text(config.read_text().replace("pricing:", "model: other-model, pricing:"))
    pytester.runpytest(*GATE, "--costgate-changed-only")
    assert len(openai_server.requests) == 6  # another model: every request changed


def test_a_baseline_update_from_an_incremental_run_keeps_the_timed_records(pytester, openai_server):
    incremental_project(pytester, openai_server.url, suites=1)
    pytester.runpytest(*GATE, "--costgate-update-baseline").assert_outcomes(passed=1)
    before = json.loads((pytester.path / "costgate-baseline.json").read_text())
    pytester.runpytest(*GATE, "--costgate-update-baseline").assert_outcomes(passed=1)
    after = json.loads((pytester.path / "costgate-baseline.json").read_text())
    from conftest import records as rows

    assert rows(after["suites"]["s0"]) == rows(before["suites"]["s0"])  # same records, timings kept, not "reused"


def test_shard_assignment_is_stable_and_balanced():
    from pytest_costgate.replay.shards import shard_of

    ids = [f"prompt-{i}" for i in range(4000)]
    shards = [shard_of(i, 8) for i in ids]
    assert shards == [shard_of(i, 8) for i in ids] and set(shards) == set(range(1, 9))
    sizes = [shards.count(k) for k in range(1, 9)]
    assert max(sizes) - min(sizes) < 150  # about 500 each


def test_each_xdist_worker_takes_its_own_gpu():
    from pytest_costgate.replay.devices import worker_device

    assert [worker_device(f"gw{i}", 4) for i in range(6)] == [0, 1, 2, 3, 0, 1]
    assert worker_device("gw3", 1) is None and worker_device(None, 4) is None and worker_device("master", 4) is None


def stable(path: Path) -> dict:
    """A report's suites without what varies between runs: timings, and where the records came from."""
    from conftest import records as rows

    doc = json.loads(path.read_text())
    out = {}
    for name, suite in doc["suites"].items():
        records = {pid: {k: v for k, v in r.items() if k not in ("ttft_ms", "e2e_ms", "tpot_ms", "busy_ms")}
                   for pid, r in rows(suite).items()}
        metrics = {k: v for k, v in suite["metrics"].items() if not k.startswith("latency")}
        rows_ = [(r["metric"], r["status"], r["baseline"], r["candidate"]) for r in suite["verdict"]["rows"]
                 if not r["metric"].startswith("latency")]
        out[name] = (records, metrics, suite["verdict"]["status"], rows_, suite["template_hash"])
    return out


def test_xdist_shards_join_into_the_unsharded_entry(pytester, demo):
    template = demo / "templates" / "support.j2"
    template.write_text("Please be thorough. " + template.read_text())  # so the verdict has something to say
    plain = pytester.runpytest(*GATE, "--costgate-report", "plain.json")
    plain.assert_outcomes(passed=1, failed=2)
    sharded = pytester.runpytest(*GATE, "-n", "2", "--costgate-shards", "3", "--costgate-report", "sharded.json", "-v")
    sharded.stdout.fnmatch_lines(["*PASSED costgate.yaml::support-answer?2/3?*"])
    assert sharded.ret == pytest.ExitCode.TESTS_FAILED  # the joined suites fail, though every shard item passed
    sharded.stdout.fnmatch_lines(["*costgate suite 'support-answer' FAIL:*"])
    assert stable(demo / "plain.json") == stable(demo / "sharded.json")


def test_ci_matrix_parts_merge_into_the_unsharded_report(pytester, demo, capsys):
    from pytest_costgate.cli import main

    plain = pytester.runpytest(*GATE, "--costgate-report", "plain.json")
    plain.assert_outcomes(passed=3)
    for k in (1, 2, 3):
        part = pytester.runpytest(*GATE, "--costgate-shard", f"{k}/3", "--costgate-report", f"part-{k}.json")
        part.assert_outcomes(passed=3)
        assert json.loads((demo / f"part-{k}.json").read_text())["kind"] == "partial"
    parts = [str(demo / f"part-{k}.json") for k in (1, 2, 3)]
    assert main(["merge", *parts, "-o", str(demo / "merged.json"), "--config", str(demo / "costgate.yaml")]) == 0
    assert stable(demo / "plain.json") == stable(demo / "merged.json")
    assert "merged 3 parts" in capsys.readouterr().out
    # refusals: a missing part, a part twice, another commit, another config, a full report
    assert main(["merge", *parts[:2], "-o", str(demo / "m.json"), "--config", str(demo / "costgate.yaml")]) == 2
    assert "shard 3/3 missing" in capsys.readouterr().err
    assert main(["merge", parts[0], parts[0], parts[1], "-o", str(demo / "m.json"),
                 "--config", str(demo / "costgate.yaml")]) == 2
    assert "are both shard 1/3" in capsys.readouterr().err
    other = json.loads((demo / "part-3.json").read_text())
    other["git_sha"] = "0" * 40
    (demo / "part-3-other.json").write_text(json.dumps(other))
    assert main(["merge", *parts[:2], str(demo / "part-3-other.json"), "-o", str(demo / "m.json"),
                 "--config", str(demo / "costgate.yaml")]) == 2
    assert "comes from commit" in capsys.readouterr().err
    other = json.loads((demo / "part-3.json").read_text())
    other["config_sha256"] = "f" * 64
    (demo / "part-3-config.json").write_text(json.dumps(other))
    assert main(["merge", *parts[:2], str(demo / "part-3-config.json"), "-o", str(demo / "m.json"),
                 "--config", str(demo / "costgate.yaml")]) == 2
    assert "another costgate config" in capsys.readouterr().err
    assert main(["merge", *parts[:2], str(demo / "plain.json"), "-o", str(demo / "m.json")]) == 2
    assert "not a partial report" in capsys.readouterr().err


def test_a_shard_never_updates_a_baseline_and_needs_a_report(pytester, demo):
    result = pytester.runpytest(*GATE, "--costgate-shard", "1/2", "--costgate-update-baseline", "--costgate-report", "p.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*partial report, which never updates a baseline*"])
    result = pytester.runpytest(*GATE, "--costgate-shard", "1/2")
    result.stderr.fnmatch_lines(["*--costgate-shard needs --costgate-report PATH*"])
    result = pytester.runpytest(*GATE, "--costgate-shard", "3/2", "--costgate-report", "p.json")
    result.stderr.fnmatch_lines(["*expected K/N with 1 <= K <= N <= 1024*"])


def test_big_suites_are_stored_column_major_and_read_back_the_same(tmp_path):
    from pytest_costgate.store.document import Document, Metrics, SuiteEntry
    from pytest_costgate.store.records import PROMPT_COLUMNS, ROWS_LIMIT, PromptResult, Records
    from pytest_costgate.store.schema import parse_document
    from pytest_costgate.store.write import dumps_document

    results = [PromptResult(f"p{i}", Decimal(1 + i % 3), 10 + i % 7, input_tokens=10 + i % 7, output_tokens=i % 5,
                            token_source="tokenizer+baseline", cost=Decimal(i % 11) / 1000, e2e_ms=float(i % 13),
                            output="ok" if i % 2 else None) for i in range(ROWS_LIMIT + 5)]
    for records in (Records.of(results), {r.id: r for r in results}):
        entry = SuiteEntry("m", "python", "replay", None, {}, "t", None, None, {}, Metrics(), prompts=records)
        text = dumps_document(Document(suites={"s": entry}, kind="baseline").to_json())
        data = json.loads(text)["suites"]["s"]["prompts"]
        assert set(data) == {"columns", "data"} and len(data["data"][0]) == ROWS_LIMIT + 5
        back = parse_document(json.loads(text), "x").suites["s"].prompts
        assert isinstance(back, Records) and dict(back) == {r.id: r for r in results}
        assert "ttft_ms" not in data["columns"] and "e2e_ms" in data["columns"]  # a column of nulls is left out
    # the form that listed every column, nulls and all, reads the same (and so does one without token_source,
    # through the exact checks, whose default it takes)
    full = json.loads(text)
    stored = full["suites"]["s"]["prompts"]
    found = dict(zip(stored["columns"], stored["data"]))
    stored["columns"], stored["data"] = list(PROMPT_COLUMNS), [found.get(c, [None] * len(results)) for c in PROMPT_COLUMNS]
    assert dict(parse_document(full, "x").suites["s"].prompts) == {r.id: r for r in results}
    del found["token_source"]
    stored["columns"], stored["data"] = list(found), list(found.values())
    assert {r.token_source for r in parse_document(full, "x").suites["s"].prompts.values()} == {"tokenizer"}


def _counting_project(tmp_path: Path, tokenizer: str) -> Any:
    from pytest_costgate.config.loader import load_config

    lines = []
    for i in range(3000):
        record: dict[str, Any] = {"id": f"p{i}", "prompt": "For a pro customer: " + "refund café 東京 🙂 " * (i % 17)}
        if i % 7 == 0:
            record = {"id": f"p{i}", "messages": [{"role": "user", "content": "hi " * (i % 5)}]}
        if i % 11 == 0:
            record["reference"] = "a reply of some tokens " * (i % 3)
        lines.append(json.dumps(record))
    (tmp_path / "prompts.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "costgate.yaml").write_text(f"""
models:
  m: {{backend: python, function: "json:dumps", tokenizer: {tokenizer}, pricing: {{input_per_1m: 2.5, output_per_1m: 10}}}}
suites:
  s: {{model: m, prompts: prompts.jsonl, tokens_only: true}}
""")
    return load_config(tmp_path / "costgate.yaml").suite("s")


def test_big_prompt_sets_are_counted_in_worker_processes_with_the_same_counts(tmp_path, monkeypatch):
    from concurrent.futures import ProcessPoolExecutor

    from pytest_costgate.gate import suite as gate
    from pytest_costgate.inputs import tokens

    spec = _counting_project(tmp_path, "cl100k_base")
    threaded, _ = gate.count_tokens_only(spec, {})
    pools = []
    real = tokens.counting_pool
    monkeypatch.setattr(tokens, "PROCESS_MIN_BYTES", 0)
    monkeypatch.setattr(gate, "counting_pool", lambda *a: pools.append(real(*a)) or pools[-1])
    in_processes, _ = gate.count_tokens_only(spec, {})
    assert isinstance(pools[0], ProcessPoolExecutor)
    assert dict(in_processes) == dict(threaded) and len(threaded) == 3000
    assert len(set(threaded.column("input_tokens"))) > 10  # the prompts differ: a real comparison


def test_a_counting_process_that_cannot_start_leaves_the_counts_exact(tmp_path, monkeypatch):
    import shutil

    import tiktoken_ext

    from pytest_costgate.gate import suite as gate
    from pytest_costgate.inputs import tokens

    local = tmp_path / "cl100k_base.tiktoken"
    shutil.copy(Path(tiktoken_ext.__path__[0]) / "data" / "cl100k_base.tiktoken", local)
    spec = _counting_project(tmp_path, f"{{encoding: cl100k_base, file: {local}}}")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "cache"))  # tiktoken keeps a copy of what it read
    expected, _ = gate.count_tokens_only(spec, {})  # loads the counter here, in this process
    local.unlink()  # a worker process loading it now fails (no file, no cached copy): its pool breaks
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(tokens, "PROCESS_MIN_BYTES", 0)
    here = []
    single = tokens.TokenCounter._single
    monkeypatch.setattr(tokens.TokenCounter, "_single", lambda self, texts: here.append(len(texts)) or single(self, texts))
    again, _ = gate.count_tokens_only(spec, {})
    assert dict(again) == dict(expected)
    assert sum(here) == sum(1 for r in expected.column("id") if int(r[1:]) % 7)  # every text, counted here instead


def test_a_worker_process_that_fails_to_start_midway_leaves_the_counts_exact():
    from concurrent.futures import ProcessPoolExecutor

    from pytest_costgate.inputs import tokens

    counter = load_counter(TokenizerSpec(encoding="cl100k_base"))
    texts = [f"prompt {i} " * (i % 9) for i in range(200)]

    class OutOfDescriptors(ProcessPoolExecutor):  # the second worker's pipe can't be made (EMFILE)
        def submit(self, *args, **kwargs):
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls > 1:
                raise OSError(24, "Too many open files")
            return super().submit(*args, **kwargs)

    with OutOfDescriptors(1, mp_context=tokens.multiprocessing.get_context("spawn"),
                          initializer=tokens._start_worker, initargs=(counter.spec,)) as pool:
        assert counter.count_later(pool, texts, 2)() == counter._single(texts)


def test_counting_workers_share_the_cores_among_xdist_workers(monkeypatch):
    from pytest_costgate.inputs import tokens

    monkeypatch.setattr(tokens.os, "cpu_count", lambda: 16)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    assert tokens.counting_workers() == 8  # at most 8
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "4")
    assert tokens.counting_workers() == 2
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "32")
    assert tokens.counting_workers() == 1
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "many")
    assert tokens.counting_workers() == 8


def test_gpu_time_costs_take_the_fast_read():
    """A GPU-priced suite's costs run to 30-odd decimal places: a million of them must not fall back to the
    record-by-record checks."""
    from pytest_costgate.pricing.prices import gpu_cost_measured
    from pytest_costgate.store.records import FIELDS, PROMPT_COLUMNS
    from pytest_costgate.store.schema_prompts import columns_fast

    costs = [gpu_cost_measured(Decimal("2.5"), Decimal(repr(100 + i / 7)) / 1000, 1) for i in range(50)]
    assert max(len(format(c.normalize(), "f")) for c in costs) > 32
    data = [[f"p{i}" for i in range(50)]] + [[None] * 50 for _ in FIELDS]
    at = PROMPT_COLUMNS.index
    data[at("weight")], data[at("rendered_tokens")] = ["1"] * 50, [5] * 50
    data[at("token_source")], data[at("reused")] = ["tokenizer"] * 50, [False] * 50
    data[at("cost")] = [format(c.normalize(), "f") for c in costs]
    fast = columns_fast(list(PROMPT_COLUMNS), None, data)
    assert fast is not None and list(fast.column("cost")) == costs
