"""Property-based: whatever bytes, YAML or JSON the loaders get, they load or raise a located CostgateError."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_costgate.config.loader import load_config
from pytest_costgate.inputs.prompts import load_prompt_set
from pytest_costgate.safety.errors import CostgateError
from pytest_costgate.store.schema import parse_document, read_document

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                    st.sampled_from(["costgate/1", "NaN", "1e999999", "-1", "0.5", "abc1234def", "replay", "fail"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=25)

# Documents shaped like a costgate/1 document, with any value anywhere: the likely damage.
def mostly(plausible: st.SearchStrategy, weight: int = 4) -> st.SearchStrategy:
    """Usually the plausible shape, sometimes anything at all."""
    return st.integers(min_value=0, max_value=weight).flatmap(lambda i: plausible if i else json_values)


numbers = st.one_of(st.integers(min_value=-5, max_value=10**6), st.sampled_from(["0.5", "12", "NaN", "1e999999", "-1"]))
record = st.dictionaries(st.sampled_from(["weight", "input_tokens", "output_tokens", "cost", "e2e_ms", "error",
                                          "output_sha", "e2e_runs", "runs", "token_source", "cached_tokens"]),
                         mostly(numbers), max_size=6)
suite = st.fixed_dictionaries({"prompts": mostly(st.dictionaries(st.text(max_size=8), mostly(record), max_size=3))},
                              optional={
    "metrics": mostly(st.dictionaries(st.sampled_from(["n", "errors", "monthly_cost", "cost_per_request",
                                                        "error_rate", "input_tokens_total"]), mostly(numbers),
                                      max_size=4)),
    "fingerprint": mostly(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)),
    "pricing": mostly(st.fixed_dictionaries({"kind": st.sampled_from(["tokens", "gpu", "x"])}, optional={
        "input_per_1m": mostly(numbers), "mode": st.sampled_from(["measured", "x"])})),
    "template_hash": st.one_of(st.none(), st.sampled_from(["b311aedab2c989ea", "zz"]), json_values),
    "verdict": mostly(st.fixed_dictionaries({"status": st.sampled_from(["pass", "fail", "bogus"])}, optional={
        "rows": mostly(st.lists(st.dictionaries(st.sampled_from(["metric", "baseline", "delta", "status"]),
                                                mostly(numbers), max_size=4), max_size=2)),
        "notes": json_values})),
    "prompt_changes": mostly(st.lists(st.dictionaries(st.sampled_from(["id", "cost_delta", "input_tokens_delta"]),
                                                      mostly(numbers), max_size=3), max_size=2)),
    "latency": json_values, "mode": st.sampled_from(["replay", "tokens-only", "x"]), "requests_per_month": numbers})
document = st.fixed_dictionaries({"schema": st.just("costgate/1"),
                                  "suites": mostly(st.dictionaries(st.text(max_size=8), mostly(suite), max_size=3))},
                                 optional={"summary": mostly(st.dictionaries(st.sampled_from(
                                     ["status", "monthly_cost", "monthly_delta", "removed_suites"]), mostly(numbers),
                                     max_size=3)), "kind": st.sampled_from(["report", "baseline", "x"]),
                                           "environment": json_values, "prices": json_values, "git_sha": json_values})


@SETTINGS
@given(document)
def test_any_document_parses_or_fails_clearly(doc):
    try:
        parsed = parse_document(doc, "fuzz.json")
    except CostgateError as exc:
        assert str(exc).startswith("fuzz.json")
        return
    json.dumps(parsed.to_json())  # what parsed can be written back


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_as_a_baseline_load_or_fail_clearly(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("b") / "baseline.json"
    path.write_bytes(raw)
    try:
        read_document(path)
    except CostgateError as exc:
        assert str(path) in str(exc)


def _prompt_file(folder: Path, suffix: str, data: bytes) -> Path:
    path = folder / f"prompts{suffix}"
    path.write_bytes(data)
    return path


@SETTINGS
@given(st.lists(json_values, max_size=5), st.sampled_from([".jsonl", ".yaml"]))
def test_any_records_load_or_fail_clearly(tmp_path_factory, records, suffix):
    folder = tmp_path_factory.mktemp("p")
    if suffix == ".jsonl":
        data = "".join(json.dumps(r) + "\n" for r in records).encode()
    else:
        data = yaml.safe_dump(records, allow_unicode=True).encode()
    try:
        prompt_set = load_prompt_set(_prompt_file(folder, suffix, data))
    except CostgateError as exc:
        assert "prompts" in str(exc)
        return
    assert all(isinstance(r.id, str) and r.id for r in prompt_set.records)


@SETTINGS
@given(st.binary(max_size=200), st.sampled_from([".jsonl", ".yaml"]))
def test_any_bytes_as_a_prompt_set_load_or_fail_clearly(tmp_path_factory, raw, suffix):
    folder = tmp_path_factory.mktemp("p")
    try:
        load_prompt_set(_prompt_file(folder, suffix, raw))
    except CostgateError:
        pass


model = st.fixed_dictionaries({"backend": st.sampled_from(["python", "python", "openai", "onnx", "nope"])}, optional={
    "function": mostly(st.just("m:run")), "path": st.just("."),
    "base_url": mostly(st.sampled_from(["http://127.0.0.1:1/v1", "http://[::1/v1", "ftp://x", "http://a b/"])),
    "timeout_s": mostly(numbers), "headers": mostly(st.dictionaries(st.sampled_from(["X-A", "bad name"]),
                                                                    mostly(st.text(max_size=6)), max_size=2)),
    "pricing": mostly(st.dictionaries(st.sampled_from(["input_per_1m", "output_per_1m", "usd_per_hour", "mode"]),
                                      mostly(numbers), max_size=3)),
    "tokenizer": st.one_of(st.sampled_from(["cl100k_base", "nope"]), json_values),
    "max_retries": mostly(numbers), "api_key_env": mostly(st.sampled_from(["HOME", "1BAD", "NOPE_X"]))})
suite_config = st.fixed_dictionaries({"model": st.sampled_from(["m", "m", "n"]),
                                      "prompts": st.sampled_from(["prompts.jsonl", "prompts.jsonl", "missing.jsonl"])},
                                     optional={
    "thresholds": mostly(st.dictionaries(st.sampled_from(["input_tokens_mean", "monthly_cost", "latency_p95", "x"]),
                                         mostly(st.sampled_from(["+5%", "+$1", "5", "off", "+5ms"])), max_size=2)),
    "params": json_values, "requests_per_month": mostly(numbers), "max_error_rate": mostly(numbers),
    "repeats": mostly(numbers), "quality": json_values, "time_budget_s": mostly(numbers),
    "template": mostly(st.sampled_from(["t.j2", "missing.j2"])), "chat_template": json_values})
config_like = st.fixed_dictionaries({
    "models": mostly(st.dictionaries(st.sampled_from(["m", "n"]), mostly(model), min_size=1, max_size=2)),
    "suites": mostly(st.dictionaries(st.sampled_from(["s", "t"]), mostly(suite_config), min_size=1, max_size=2))},
    optional={"defaults": json_values, "baseline": json_values, "pricing": json_values,
              "on_missing_baseline": json_values, "time_budget_s": mostly(numbers)})


@SETTINGS
@given(config_like)
def test_any_config_loads_or_fails_clearly(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("c")
    (folder / "prompts.jsonl").write_text('{"id": "a", "vars": {}}\n')
    (folder / "t.j2").write_text("Q: {{ q }}")
    path = folder / "costgate.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    try:
        load_config(path)
    except CostgateError as exc:
        assert str(path) in str(exc)


@SETTINGS
@given(st.text(max_size=300))
def test_any_text_as_a_config_loads_or_fails_clearly(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("c") / "costgate.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except CostgateError as exc:
        assert str(path) in str(exc)


# The plain-template fast path renders exactly what Jinja renders.
holes = st.sampled_from(["{{ a }}", "{{b}}", "{{- a }}", "{{ b -}}", "{{ prompt_id }}"])
texts = st.text(alphabet=st.characters(blacklist_characters="{}%#", blacklist_categories=("Cs",)), max_size=12)
plain_sources = st.lists(st.one_of(texts, holes), max_size=8).map("".join)
values = st.one_of(st.text(max_size=10), st.integers(), st.none(), st.booleans(), st.floats(allow_nan=False),
                   st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


@SETTINGS
@given(plain_sources, values, values, st.booleans())
def test_the_plain_fast_path_renders_what_jinja_renders(source, a, b, trailing):
    from pytest_costgate.config.specs import TemplateSpec
    from pytest_costgate.inputs.prompts import PromptRecord
    from pytest_costgate.inputs.render import PromptRenderer, plain_parts
    from pytest_costgate.safety.errors import TemplateError

    source += "\n" if trailing else ""
    renderer = PromptRenderer(TemplateSpec(chat=(("user", source, "inline"),)))
    part = renderer.parts[0]
    assert part.plain == plain_parts(part.template.environment, source)
    assert part.plain is not None  # only text and holes: the fast path is taken
    record = PromptRecord("p1", 1, {"a": a, "b": b})
    context = {"a": a, "b": b, "messages": [], "prompt_id": "p1"}
    expected = part.template.render(context)
    assert renderer.render(record)[0]["content"] == expected
    assert renderer._format(0, record) == expected  # the str.format route text templates take
    assert renderer._fill_all([record, record]) == [expected, expected]  # ... and its batch form
    missing = PromptRecord("p2", 2, {"a": a})
    if "b" in source.replace("{{ prompt_id }}", ""):
        for attempt in (lambda: renderer.render(missing), lambda: renderer._fill_all([record, missing])):
            try:
                attempt()
            except TemplateError as exc:
                assert "'b' is undefined" in str(exc)


# The fast column-wise check of per-prompt rows accepts nothing the exact checks refuse, and builds the same records.
def usually(valid: st.SearchStrategy, invalid: st.SearchStrategy) -> st.SearchStrategy:
    """Nineteen times in twenty a valid cell, so whole rows are often valid and both paths build records."""
    return st.integers(min_value=0, max_value=19).flatmap(lambda i: valid if i else invalid)


cells = {
    "id": usually(st.text(alphabet="abcdefghij", min_size=4, max_size=6), st.one_of(st.just(""), st.integers())),
    "weight": usually(st.sampled_from(["1", "2.5", "0.001"]), st.sampled_from(["0", "-1", "1e3", "x", 1])),
    "rendered_tokens": usually(st.integers(min_value=0, max_value=200), st.sampled_from([-1, "3", None])),
    "input_tokens": usually(st.one_of(st.none(), st.integers(min_value=0, max_value=200)), st.sampled_from([-2, True])),
    "output_tokens": usually(st.one_of(st.none(), st.integers(min_value=0, max_value=200)), st.just(-1)),
    "cached_tokens": usually(st.one_of(st.none(), st.integers(min_value=0, max_value=5)), st.just(2.5)),
    "token_source": usually(st.sampled_from(["usage", "tokenizer"]), st.sampled_from(["", 3])),
    "ttft_ms": usually(st.one_of(st.none(), st.floats(min_value=0, max_value=1e3), st.integers(0, 10)),
                       st.sampled_from([float("nan"), -1, "1"])),
    "e2e_ms": usually(st.one_of(st.none(), st.floats(min_value=0, max_value=1e3)), st.just(float("inf"))),
    "tpot_ms": st.none(), "busy_ms": st.none(),
    "runs": usually(st.one_of(st.none(), st.integers(min_value=1, max_value=3)), st.just(0)),
    "e2e_runs": usually(st.one_of(st.none(), st.lists(st.floats(min_value=0, max_value=5), max_size=2)),
                        st.sampled_from([[None], "x"])),
    "cost": usually(st.one_of(st.none(), st.sampled_from(["0.000342616", "12", "0", "0.00008573333333333333333333333333",
                                                         "0.000000000003416666666666666666666666667"])),
                    st.sampled_from(["1E-5", "NaN", "-0.1", 0.5, "0." + "0" * 30 + "1", "0." + "1" * 59,
                                     "0." + "0" * 29 + "1"])),
    "output": usually(st.one_of(st.none(), st.text(max_size=5)), st.just(7)),
    "output_sha": usually(st.sampled_from([None, "abcdef12"]), st.just("zz")),
    "error": usually(st.one_of(st.none(), st.text(max_size=5)), st.just([])), "note": st.none(),
    "request_hash": usually(st.sampled_from([None, "0123456789abcdef"]), st.just("nothex!")),
    "reused": usually(st.sampled_from([None, True, False]), st.just(1)),
    "cacheable_tokens": usually(st.one_of(st.none(), st.integers(min_value=0, max_value=200)), st.just(-3)),
    "served_by": usually(st.sampled_from([None, "gpt-4o-mini", "gpt-4o"]), st.sampled_from([3, "x" * 501])),
    "cache_write_tokens": usually(st.one_of(st.none(), st.integers(min_value=0, max_value=5)), st.just(-1)),
    "cache_write_1h_tokens": usually(st.one_of(st.none(), st.integers(min_value=0, max_value=5)), st.just("2")),
    "reasoning_tokens": usually(st.one_of(st.none(), st.integers(min_value=0, max_value=50)), st.just(1.5)),
    "usage_details": usually(st.one_of(st.none(), st.just({"input_audio_tokens": 3})),
                             st.sampled_from([{"input_audio_tokens": -1}, {"Bad Key": 1}, [1], "x"])),
}


@SETTINGS
@given(st.lists(st.tuples(*[cells[name] for name in cells]), max_size=4))
def test_fast_rows_agree_with_the_exact_checks(rows):
    from pytest_costgate.safety.errors import BaselineError
    from pytest_costgate.store.records import PROMPT_COLUMNS
    from pytest_costgate.store.schema import JsonReader
    from pytest_costgate.store.schema_prompts import columnar as _columnar
    from pytest_costgate.store.schema_prompts import columns_fast as _columns_fast

    assert tuple(cells) == PROMPT_COLUMNS
    rows = [list(row) for row in rows]
    fast = _columns_fast(list(PROMPT_COLUMNS), [list(row) for row in rows])
    try:
        exact = _columnar({"columns": list(PROMPT_COLUMNS), "rows": rows}, JsonReader("x", ""), (), fast=False)
    except BaselineError:
        assert fast is None
        return
    if fast is not None:
        assert fast == exact


@SETTINGS
@given(st.lists(st.lists(st.integers(min_value=0, max_value=3), max_size=40), max_size=12),
       st.integers(min_value=1, max_value=8), st.integers(min_value=1, max_value=5))
def test_bounded_cache_share_equals_the_exact_longest_common_prefix(sequences, min_tokens, block):
    """The digest-per-block count (bounded memory) gives what the longest shared prefix gives."""
    from pytest_costgate.config.specs import PrefixCache
    from pytest_costgate.inputs.cache_share import cacheable, cacheable_tokens, shared_prefixes

    rule = PrefixCache(min_tokens=min_tokens, block=block)
    exact = [cacheable(n, rule) for n in shared_prefixes([tuple(s) for s in sequences])]
    assert cacheable_tokens(iter(sequences), rule) == exact


@SETTINGS
@given(st.decimals(min_value=0, max_value=10**9, places=3, allow_nan=False), st.booleans())
def test_numbers_read_the_way_they_are_written(value, underscores):
    """Thousands grouped with commas or underscores read as written; a decimal comma is refused, never misread."""
    from pytest_costgate.config.yamlsrc import CommaError, plain_number

    whole, _, frac = f"{value:f}".partition(".")
    grouped = f"{int(whole):_}" if underscores else f"{int(whole):,}"
    text = grouped + (f".{frac}" if frac else "")
    assert plain_number(text) == value
    if frac.rstrip("0") and (len(frac) != 3 or int(whole) == 0):  # '12,500' reads as thousands: not refusable
        with pytest.raises(CommaError):
            plain_number(f"{whole},{frac}")


@SETTINGS
@given(st.sampled_from(["suites", "schema", "kind", "summary"]))
def test_a_document_naming_a_key_twice_is_refused(key):
    import tempfile

    from pytest_costgate.safety.errors import BaselineError
    from pytest_costgate.store.schema import read_document

    folder = Path(tempfile.mkdtemp())
    path = folder / "doc.json"
    path.write_text('{"schema": "costgate/1", "kind": "baseline", "suites": {}, "summary": {}, ' + f'"{key}": {{}}}}')
    with pytest.raises(BaselineError, match="twice"):
        read_document(path)
