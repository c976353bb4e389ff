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


def project(pytester: pytest.Pytester, config: str | None = None, prompts: str = PROMPTS, template: str = "Q: {{ q }}",
            baseline: str | None = None) -> None:
    pytester.makepyfile(echo_model="def run(prompt, params):\n    return 'ok ' + str(prompt)[:20]\n")
    pytester.makefile(".jsonl", prompts=prompts)
    pytester.makefile(".j2", t=template)
    pytester.makefile(".yaml", costgate=config if config is not None else f"models:\n{MODEL}suites:\n{SUITE}")
    if baseline is not None:
        (pytester.path / "costgate-baseline.json").write_text(baseline)


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
                        ["costgate.yaml:3: models.m.backend: unknown backend 'onxx'. Did you mean 'onnx'? Available: onnx, openai, python*"]),
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
                   ["*prompts.jsonl:1: 'a': 'weight' must be a positive number, got -2."]),
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
    result.stdout.fnmatch_lines(["*2 of 2 requests failed*", line])
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
    result.stderr.fnmatch_lines(["*ini option costgate: expected true or false*'maybe'*"])
