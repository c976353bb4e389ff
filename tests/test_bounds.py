"""Memory stays bounded whatever a pull request or a server sends: each case runs in a child process whose address
space is capped at 1 GiB (RLIMIT_AS) and must end in one clear error, never a MemoryError or a crash."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

resource = pytest.importorskip("resource")  # POSIX only
LIMIT = 1 << 30


def capped(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "case.py"
    script.write_text(f"import resource\nresource.setrlimit(resource.RLIMIT_AS, ({LIMIT}, {LIMIT}))\n"
                      + textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.mark.parametrize("template", [
    "{{ messages[0].content | center(1000000000) }}",
    "{{ '%1000000000s' | format(messages[0].content) }}",
    "{{ '%1000000000s' % messages[0].content }}",
    "{{ ((messages[0].content ~ '\\n') * 1000) | indent(100000000, true) }}",
    "{{ messages | tojson(indent=300000000) }}",
    "{% set ns = namespace(x=messages[0].content * 100000) %}{% for i in range(40) %}{% set ns.x = ns.x ~ ns.x %}"
    "{% endfor %}{{ ns.x }}",
    "{% for i in range(100000) %}{{ messages[0].content * 9999 }}{% endfor %}",
])
def test_a_hostile_chat_template_is_refused_in_bounded_memory(template, tmp_path):
    done = capped(f"""
        from pytest_costgate.inputs.chat_format import ChatFormat
        from pytest_costgate.safety.errors import TemplateError
        try:
            ChatFormat({template!r}, {{}}, "model/tokenizer_config.json").render([{{"role": "user", "content": "xy"}}], "p7")
        except TemplateError as exc:
            print("REFUSED", exc)
        """, tmp_path)
    assert "REFUSED" in done.stdout and "p7" in done.stdout, (done.stdout, done.stderr[-2000:])
    assert "MemoryError" not in done.stdout + done.stderr


@pytest.mark.parametrize("template", ["{{ ((q ~ '\\n') * 1000) | indent(100000000, true) }}", "{{ q | center(1000000000) }}",
                                      "{% set ns = namespace(x=q * 100000) %}{% for i in range(40) %}"
                                      "{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x }}"])
def test_a_hostile_prompt_template_is_refused_in_bounded_memory(template, tmp_path):
    (tmp_path / "t.j2").write_text(template)
    done = capped("""
        from pathlib import Path
        from pytest_costgate.config.specs import TemplateSpec
        from pytest_costgate.inputs.prompts import PromptRecord
        from pytest_costgate.inputs.render import PromptRenderer
        from pytest_costgate.safety.errors import TemplateError
        try:
            PromptRenderer(TemplateSpec(text=Path("t.j2").resolve())).render_all([PromptRecord("p7", 1, {"q": "xy"})])
        except TemplateError as exc:
            print("REFUSED", exc)
        """, tmp_path)
    assert "REFUSED" in done.stdout and "p7" in done.stdout, (done.stdout, done.stderr[-2000:])
    assert "MemoryError" not in done.stdout + done.stderr


def test_a_gzip_bomb_baseline_is_refused_before_it_is_read(tmp_path):
    bomb = tmp_path / "baseline.json.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as out:
        block = b" " * (64 << 20)
        for _ in range(24):  # 1.5 GiB of spaces, about 1.5 MB packed
            out.write(block)
        out.write(b"{}")
    assert bomb.stat().st_size < 4 << 20
    done = capped(f"""
        from pathlib import Path
        from pytest_costgate.safety.errors import BaselineError
        from pytest_costgate.store.schema import read_document
        try:
            read_document(Path({str(bomb)!r}))
        except BaselineError as exc:
            print("REFUSED", exc)
        """, tmp_path)
    assert "REFUSED" in done.stdout and "baseline.json.gz" in done.stdout and "unpacks to over" in done.stdout, \
        (done.stdout, done.stderr[-2000:])


def test_an_event_that_never_ends_is_refused_as_it_grows(tmp_path):
    done = capped("""
        import itertools
        from pytest_costgate.net.sse import json_events
        from pytest_costgate.safety.errors import BackendError
        try:
            list(json_events("data: " + "x" * 1000000 for _ in itertools.count()))
        except BackendError as exc:
            print("REFUSED", exc)
        """, tmp_path)
    assert "REFUSED" in done.stdout and "over 4 MiB" in done.stdout, done.stderr[-2000:]


def test_an_answer_that_never_ends_is_cut_off(tmp_path):
    done = capped("""
        from pytest_costgate.replay.backends.openai import ChatReader
        from pytest_costgate.safety.errors import BackendError
        reader = ChatReader("http://127.0.0.1/v1/chat/completions")
        piece = "x" * (1 << 20)
        try:
            for _ in range(100_000):
                reader.feed({"choices": [{"index": 0, "delta": {"content": piece}}]})
        except BackendError as exc:
            print("REFUSED", exc)
        """, tmp_path)
    assert "REFUSED" in done.stdout and "characters" in done.stdout, done.stderr[-2000:]


def test_duplicate_keys_and_sizes_in_documents(tmp_path):
    from pytest_costgate.safety.errors import BaselineError
    from pytest_costgate.store.schema import read_document

    path = tmp_path / "report.json"
    path.write_text('{"schema": "costgate/1", "kind": "report", "suites": {}, "suites": {"x": {}}}')
    with pytest.raises(BaselineError, match="'suites' twice"):
        read_document(path)
    assert json.loads('{"a": 1}') == {"a": 1}
