"""Every bad input gives one clear paragraph naming the place and the fix; never a traceback."""
from __future__ import annotations

import json

import pytest

PROMPTS = '{"id": "a", "vars": {"q": "hello"}}\n{"id": "b", "vars": {"q": "bye"}}\n'
MODEL = """  m:
    backend: python
    function: echo_model:run
    path: .
    pricing: {input_per_1m: 1, output_per_1m: 2}
"""
SUITE = """  s:
    model: m
    prompts: prompts.jsonl
    template: t.j2
"""


FOLDER = "<a folder>"


def project(pytester: pytest.Pytester, config: str | None = None, prompts: str = PROMPTS, template: str = "Q: {{ q }}",
            baseline: str | None = None) -> None:
    pytester.makepyfile(echo_model="def run(prompt, params):\n    return 'ok ' + str(prompt)[:20]\n")
    pytester.makefile(".jsonl", prompts=prompts)
    pytester.makefile(".j2", t=template)
    pytester.makefile(".yaml", costgate=config if config is not None else f"models:\n{MODEL}suites:\n{SUITE}")
    if baseline == FOLDER:
        (pytester.path / "costgate-baseline.json").mkdir()
    elif baseline is not None:
        (pytester.path / "costgate-baseline.json").write_text(baseline)


def damaged(records: dict, suite_extra: str = "") -> str:
    """A baseline for suite s whose prompt records (or other fields) are damaged."""
    return '{"schema": "costgate/1", "suites": {"s": {' + suite_extra + '"prompts": ' + json.dumps(records) + '}}}'


CASES = {
    "malformed yaml": (dict(config="models:\n  m: [1\nsuites: {}\n"), ["costgate.yaml:3: not valid YAML*"]),
    "empty config": (dict(config=""), ["*the config is empty*quickstart*"]),
    "unknown top-level key": (dict(config=f"model:\n{MODEL}suites:\n{SUITE}"),
                              ["costgate.yaml:1: model: unknown key 'model'. Did you mean 'models'?*"]),
    "unknown suite key": (dict(config=f"models:\n{MODEL}suites:\n{SUITE}    treshold: {{}}\n"),
                          ["costgate.yaml:12: suites.s.treshold: unknown key 'treshold'. Did you mean 'thresholds'?*"]),
    "bad threshold": (dict(config=f"models:\n{MODEL}suites:\n{SUITE}    thresholds:\n      monthly_cost: {{fail: '200'}}\n"),
                      ["costgate.yaml:13: suites.s.thresholds.monthly_cost.fail: '200': write money with a dollar sign*"]),
    "unknown metric": (dict(config=f"models:\n{MODEL}suites:\n{SUITE}    thresholds:\n      latency_p99: '+5%'\n"),
                       ["*suites.s.thresholds.latency_p99: unknown key 'latency_p99'*Allowed here:*latency_p95*"]),
    "missing prompts file": (dict(config=f"models:\n{MODEL}suites:\n  s:\n    model: m\n    prompts: nope.jsonl\n"),
                             ["costgate.yaml:10: suites.s.prompts: prompt set '*nope.jsonl' does not exist*"]),
    "missing required key": (dict(config=f"models:\n{MODEL}suites:\n  s:\n    model: m\n"),
                             ["costgate.yaml:8: suites.s: missing required key 'prompts'."]),
    "unknown model": (dict(config=f"models:\n{MODEL}suites:\n{SUITE.replace('model: m', 'model: mm')}"),
                      ["costgate.yaml:9: suites.s.model: no model named 'mm' under models:. Did you mean 'm'?"]),
    "unknown backend": (dict(config=f"models:\n{MODEL.replace('backend: python', 'backend: onxx')}suites:\n{SUITE}"),
                        ["costgate.yaml:3: models.m.backend: unknown backend 'onxx'. Did you mean 'onnx'? Available: anthropic, gemini, genai, onnx, openai, python*"]),
    "negative price": (dict(config=f"models:\n{MODEL.replace('input_per_1m: 1', 'input_per_1m: -1')}suites:\n{SUITE}"),
                       ["*models.m.pricing.input_per_1m: expected a number >= 0, got -1."]),
    "template and chat_template": (dict(config=f"models:\n{MODEL}suites:\n{SUITE}    chat_template: []\n"),
                                   ["*suites.s: give either 'template' (text) or 'chat_template'*"]),
    "bad error rate": (dict(config=f"models:\n{MODEL}suites:\n{SUITE}    max_error_rate: 5\n"),
                       ["*suites.s.max_error_rate: expected a fraction between 0 and 1*"]),
    "duplicate ids": (dict(prompts=PROMPTS + '{"id": "a", "vars": {"q": "again"}}\n'),
                      ["*prompts.jsonl:3: duplicate id 'a' (first on line 1)*unique*"]),
    "bad jsonl line": (dict(prompts=PROMPTS + '{"id": "c", "vars": {\n'),
                       ["*prompts.jsonl:3: not valid JSON*one JSON object*"]),
    "record without id": (dict(prompts='{"vars": {"q": "x"}}\n'), ["*prompts.jsonl:1: missing 'id'*"]),
    "bad weight": (dict(prompts='{"id": "a", "vars": {"q": "x"}, "weight": -2}\n'),
                   ["*prompts.jsonl:1: 'a': 'weight' must be a positive number from 1e-9 to 1e12, got -2."]),
    "bad message": (dict(prompts='{"id": "a", "messages": [{"role": "user"}]}\n'),
                    ["*prompts.jsonl:1: 'a': messages?0? must be {\"role\": str, \"content\": str}*"]),
    "unknown record field": (dict(prompts='{"id": "a", "var": {"q": "x"}}\n'),
                             ["*prompts.jsonl:1: unknown field 'var'. Did you mean 'vars'?*"]),
    "undefined template variable": (dict(template="Q: {{ q }}\nTier: {{ tier }}"),
                                    ["*t.j2:2: rendering prompt 'a' failed: 'tier' is undefined.*Add the variable*"]),
    "template syntax error": (dict(template="Q: {{ q }\n"), ["*t.j2:1: template syntax error:*Fix the Jinja2 syntax*"]),
    "sandbox blocks unsafe template": (dict(template="{{ q.__class__.__mro__ }}"),
                                       ["*rendering prompt 'a' failed:*unsafe*"]),
    "python backend import error": (dict(config=f"models:\n{MODEL.replace('echo_model', 'nomodule')}suites:\n{SUITE}"),
                                    ["*cannot import 'nomodule'*Add 'path:'*"]),
    "baseline of another schema": (dict(baseline=json.dumps({"schema": "costgate/0", "suites": {}})),
                                   ["*costgate-baseline.json: schema is 'costgate/0', this costgate * reads 'costgate/1'*--costgate-update-baseline*"]),
    "baseline not json": (dict(baseline="{oops"), ["*costgate-baseline.json:1: the baseline is not valid JSON*"]),
    # issue 9: every class of bad input seen as a traceback, INTERNALERROR or wrong number
    "integer suite name": (dict(config=f"models:\n{MODEL}suites:\n  1:\n    model: m\n    prompts: prompts.jsonl\n"),
                           ["*costgate.yaml:8: suites?1?: the name 1 is read by YAML as int, not text; quote it, e.g. '1':.*"]),
    "yes as a suite name": (dict(config=f"models:\n{MODEL}suites:\n  yes:\n    model: m\n    prompts: prompts.jsonl\n"),
                            ["*suites?True?: the name True is read by YAML as bool, not text; quote it, e.g. 'true':.*"]),
    "integer model name": (dict(config=f"models:\n  7:\n    backend: python\n    function: echo_model:run\nsuites:\n{SUITE}"),
                           ["*models?7?: the name 7 is read by YAML as int*quote it*"]),
    "suite name with a newline": (dict(config=f'models:\n{MODEL}suites:\n  "a\\nb":\n    model: m\n    prompts: prompts.jsonl\n'),
                                  ["*may hold only letters, digits*rename it.*"]),
    "input tokens as a word": (dict(baseline=damaged({"a": {"input_tokens": "many"}})),
                               ["*costgate-baseline.json: suites.s.prompts.a.input_tokens: expected a whole number >= 0, got 'many'.*"]),
    "cost NaN": (dict(baseline=damaged({"a": {"cost": "NaN"}})),
                 ["*suites.s.prompts.a.cost: expected a finite decimal of sane size, got 'NaN'.*"]),
    "cost 1e999999": (dict(baseline=damaged({"a": {"cost": "1e999999"}})),
                      ["*suites.s.prompts.a.cost: expected a finite decimal of sane size, got '1e999999'.*"]),
    "negative output tokens": (dict(baseline=damaged({"a": {"output_tokens": -40000}})),
                               ["*suites.s.prompts.a.output_tokens: expected a whole number >= 0, got -40000.*"]),
    "tokens beyond any model": (dict(baseline=damaged({"a": {"input_tokens": 10**15}})),
                                ["*suites.s.prompts.a.input_tokens: 1,000,000,000,000,000 is beyond any model*"]),
    "fingerprint a string": (dict(baseline=damaged({}, '"fingerprint": "x", ')),
                             ["*suites.s.fingerprint: expected an object, got 'x'.*"]),
    "suite entry a list": (dict(baseline='{"schema": "costgate/1", "suites": {"s": [1, 2]}}'),
                           ["*costgate-baseline.json: suites.s: expected an object, got ?1, 2?.*"]),
    "baseline nested deeply": (dict(baseline='{"schema": "costgate/1", "suites": ' + "[" * 100000 + "]" * 100000 + "}"),
                               ["*costgate-baseline.json: the baseline is nested too deeply*"]),
    "requests_per_month 1e400": (dict(config=f"models:\n{MODEL}suites:\n{SUITE}    requests_per_month: 1e400\n"),
                                 ["*suites.s.requests_per_month: expected a number of at most 1,000,000,000,000, got '1e400'; a typo?"]),
    "requests_per_month 10**30": (dict(config=f"models:\n{MODEL}suites:\n{SUITE}    requests_per_month: {10**30}\n"),
                                  ["*suites.s.requests_per_month: expected a number of at most*a typo?"]),
    "decimal comma": (dict(config=f"models:\n{MODEL.replace('pricing: {input_per_1m: 1, output_per_1m: 2}', 'pricing:{0}      input_per_1m: 1,5{0}      output_per_1m: 2').format(chr(10))}suites:\n{SUITE}"),
                      ["*models.m.pricing.input_per_1m: '1,5': write decimals with a dot (1.5)*"]),
    "python tag": (dict(config=f"models:\n{MODEL}suites:\n{SUITE}    params: {{x: !!python/name:os.system ''}}\n"),
                   ["*costgate.yaml:12: unsupported YAML value*python/name*only plain YAML*"]),
    "recursive alias": (dict(config=f"models:\n{MODEL}suites:\n{SUITE}    params: &p {{x: *p}}\n"),
                        ["*this YAML alias refers to the value it is inside*"]),
    "alias bomb": (dict(config=f"models:\n{MODEL}suites:\n{SUITE}    params:\n" + "".join(
        f"      l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9 if i else ["lol"] * 9) + "]\n" for i in range(9))),
                   ["*the YAML expands to too many values (aliases repeating aliases?)*"]),
    "yaml date in params": (dict(config=f"models:\n{MODEL}suites:\n{SUITE}    params: {{seed: 2024-01-01}}\n"),
                            ["*suites.s.params.seed: 2024-01-01 is read by YAML as a date, which can't be sent as JSON; quote it*"]),
    "max_retries -1": (dict(config="models:\n  m: {backend: openai, base_url: 'http://127.0.0.1:9/v1', max_retries: -1}\n"
                                   f"suites:\n{SUITE}"),
                       ["*models.m.max_retries: expected a whole number from 0 to 100, got -1.*"]),
    "timeout nan": (dict(config="models:\n  m: {backend: openai, base_url: 'http://127.0.0.1:9/v1', timeout_s: .nan}\n"
                                f"suites:\n{SUITE}"),
                    ["*models.m.timeout_s: expected a positive number of seconds*"]),
    "header with a newline": (dict(config="models:\n  m: {backend: openai, base_url: 'http://127.0.0.1:9/v1', "
                                          "headers: {X-A: \"a\\nb\"}}\n" + f"suites:\n{SUITE}"),
                              ["*models.m.headers: the value of header 'X-A' must be text on one line*"]),
    "lone surrogate id": (dict(prompts='{"id": "a\\ud800", "vars": {"q": "x"}}\n'),
                          ["*prompts.jsonl:1: id holds text that is not valid Unicode*"]),
    "deeply nested record": (dict(prompts='{"id": "a", "vars": {"q": ' + "[" * 100000 + "]" * 100000 + '}}\n'),
                             ["*prompts.jsonl:1: the record is nested too deeply*"]),
    "string times a billion": (dict(template="{{ 'x' * 10**9 }}"), ["*t.j2:1: rendering prompt 'a' failed: '*' would build*"]),
    # found by an adversarial review after the first pass
    "tiny exponent": (dict(config=f"models:\n{MODEL}suites:\n{SUITE}    max_error_rate: '1e-999999999999999999'\n"),
                      ["*suites.s.max_error_rate: expected a number of at least 1e-12 (or 0)*a typo?"]),
    "price below any currency": (dict(config=f"models:\n{MODEL.replace('input_per_1m: 1', 'input_per_1m: 1.0e-31')}suites:\n{SUITE}"),
                                 ["*models.m.pricing.input_per_1m: expected a number of at least 1e-12*"]),
    "tiny weight": (dict(prompts='{"id": "a", "vars": {"q": "x"}, "weight": 1e-31}\n'),
                    ["*prompts.jsonl:1: 'a': 'weight' must be a positive number from 1e-9 to 1e12, got 1e-31."]),
    "per_message beyond reason": (dict(config="models:\n" + MODEL.replace("pricing:", "tokenizer: {encoding: cl100k_base, "
                                                                          "per_message: 200000000}\n    pricing:")
                                       + f"suites:\n{SUITE}"),
                                  ["*models.m.tokenizer.per_message: expected a whole number of at most 1,000*"]),
    "threshold decimal comma": (dict(config=f"models:\n{MODEL}suites:\n{SUITE}    thresholds:\n      input_tokens_mean: {{fail: '+1,5%'}}\n"),
                                ["*thresholds.input_tokens_mean.fail: '+1,5%': write decimals with a dot*"]),
    "huge integer in a record": (dict(prompts='{"id": "a", "vars": {"q": ' + "9" * 5000 + '}}\n'),
                                 ["*prompts.jsonl:1: unreadable JSON value (Exceeds the limit*"]),
    "huge integer in the baseline": (dict(baseline='{"schema": "costgate/1", "suites": {"s": {"prompts": {}, "repeats": '
                                                   + "9" * 5000 + '}}}'),
                                     ["*costgate-baseline.json: the baseline holds an unreadable value*"]),
    "template renders a lone surrogate": (dict(template='{{ "\\ud800" }}'),
                                          ["*t.j2: prompt 'a' renders text that is not valid Unicode*"]),
    "ljust a billion": (dict(template="{{ q.ljust(3000000000) }}"), ["*rendering prompt 'a' failed: a call with the number 3e+09*"]),
    "format width a billion": (dict(template="{{ '%3000000000s'|format(q) }}"), ["*a format width over 7 digits*"]),
    "str.format width a billion": (dict(template="{{ '{:>3000000000}'.format(q) }}"), ["*a format width over 7 digits*"]),
    "model name of 600 characters": (dict(config="models:\n  m: {backend: openai, base_url: 'http://127.0.0.1:9/v1', model: '"
                                                 + "x" * 600 + f"'}}\nsuites:\n{SUITE}"),
                                     ["*models.m.model: expected the model name the server knows*"]),
    "baseline is a folder": (dict(baseline=FOLDER), ["*costgate-baseline.json: the baseline is not a regular file*"]),
    "baseline with bad records": (dict(baseline=json.dumps({"schema": "costgate/1", "suites": {"s": {"prompts": {"a": 5}}}})),
                                  ["*costgate-baseline.json: suites.s.prompts.a: expected an object, got 5.*--costgate-update-baseline*"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_a_clear_error(pytester, case):
    kwargs, lines = CASES[case]
    project(pytester, **kwargs)
    result = pytester.runpytest("--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider")
    assert result.ret != 0
    output = result.stdout.lines + result.stderr.lines
    result.stdout.no_fnmatch_line("*INTERNALERROR*")
    result.stderr.no_fnmatch_line("*INTERNALERROR*")
    assert not any("Traceback" in line for line in output), "\n".join(output)
    pytest.LineMatcher(output).fnmatch_lines(["*" + line.lstrip("*") for line in lines])


def openai_project(pytester, url: str, extra: str = "") -> None:
    project(pytester, config=f"""models:
  m:
    backend: openai
    base_url: {url}
    max_retries: 0
{extra}suites:
{SUITE}""")


@pytest.mark.parametrize("fault, line", [
    ("401", "*HTTP 401: Incorrect API key provided (check the API key*"),
    ("notjson", "*the response is not JSON: '<html>502 Bad Gateway</html>'*"),
    ("malformed", "*malformed stream event (not JSON)*"),
])
def test_server_faults_fail_the_suite_with_the_server_message(pytester, openai_server, fault, line):
    openai_server.default = fault
    openai_project(pytester, openai_server.url)
    result = pytester.runpytest("--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*2 of 2 requests failed*" + line.lstrip("*")])  # the note, printed once
    result.stdout.fnmatch_lines(["s FAIL: error rate 100% (max_error_rate 0) (breach table above)"])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_unreachable_endpoint(pytester):
    openai_project(pytester, "http://127.0.0.1:9/v1")
    result = pytester.runpytest("--costgate", "--costgate-config", "costgate.yaml", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*cannot connect to http://127.0.0.1:9/v1/chat/completions*is the server running*"])


def test_missing_config_file(pytester):
    result = pytester.runpytest("--costgate", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*costgate.yaml: no costgate config here. Pass --costgate-config PATH*"])


def test_bad_ini_flag(pytester):
    pytester.makeini("[pytest]\ncostgate = maybe\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    # ours, or (pytest >= 9.2 checks bool ini values itself) pytest's own: one line naming the value either way
    result.stderr.re_match_lines([r".*(ini option costgate: expected true or false.*|invalid truth value )'maybe'.*"])
    assert "Traceback" not in result.stderr.str()
