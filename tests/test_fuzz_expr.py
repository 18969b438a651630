"""Malformed and hostile expressions: a rendered string or a `TemplateError`, and nothing else.

Hypothesis writes templates from Pebble and Jinja fragments (every filter podium registers,
the operators, `??`, `?:`, nested brackets and tags, huge numbers, loops and recursion) and
renders them against a flow-like context. Each render must end, return text or raise our
`TemplateError`, and stay within a memory bound; Java date patterns get the same treatment.
The limits that make this hold are pinned below with their exact messages.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.expr import javadate
from daemon.expr import limits as expr_limits
from daemon.expr.filters import FILTERS, FUNCTIONS
from daemon.expr.renderer import Renderer
from daemon.sdk.clock import FakeClock
from daemon.sdk.errors import TemplateError

FUZZ = settings(
    max_examples=400,
    deadline=timedelta(seconds=5),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Far above what a bounded render keeps alive (MAX_LENGTH characters, a few copies), far below
# what an unbounded `'x' * 10**9` or `range(10**9) | list` would take.
MEMORY_BOUND = 400 * 1024 * 1024

CONTEXT: dict[str, Any] = {
    "inputs": {
        "name": "Ada",
        "n": 3,
        "ratio": 3.5,
        "items": ["a", "b", "c"],
        "blank": " ",
        "nothing": None,
        "flag": True,
        "map": {"k": "v", "items": 2},
    },
    "outputs": {
        "extract": {
            "value": "42",
            "uri": "kestra://ns/f/e/out.csv",
            "body": '{"a": [1, 2, {"b": null}]}',
        }
    },
    "vars": {"welcome": "Hello, {{ inputs.name }}!", "loop": "{{ render(vars.loop) }}"},
    "execution": {"id": "4wjtkzwVGBM9yKnjm3yv8r", "startDate": "2024-05-01T08:30:00.123Z"},
    "trigger": {"date": "2019-03-01T09:00:00Z", "body": "{{ 7*7 }}"},
    "flow": {"id": "f", "namespace": "ns"},
    "labels": {"team": "data"},
}

NAMES = [
    "inputs.name",
    "inputs.n",
    "inputs.ratio",
    "inputs.items",
    "inputs.blank",
    "inputs.nothing",
    "inputs.flag",
    "inputs.map",
    "inputs.map.items",
    "inputs.missing",
    "outputs.extract.value",
    "outputs.extract.body",
    "outputs.nope.value",
    "vars.welcome",
    "execution.startDate",
    "trigger.date",
    "trigger.body",
    "flow",
    "labels.team",
    "unknown",
    "inputs.items[0]",
    "inputs.items[-1]",
    "inputs.items[99]",
    "inputs['name']",
]
LITERALS = [
    "0",
    "1",
    "-1",
    "3.5",
    "1e308",
    "10**9",
    "10**20",
    "2**62",
    "9**9**9",
    "''",
    "'x'",
    "'a{{b}}'",
    "'%s'",
    "'{}'",
    "'\\t'",
    "'\\n'",
    "'yyyy-MM-dd'",
    "'DAYS'",
    "'MILLENNIA'",
    "'(a+)+$'",
    "'.'",
    "'['",
    "null",
    "true",
    "false",
    "[]",
    "[1, 'a', null]",
    "{'a': 1}",
    "{}",
    "range(10**9)",
    "range(3)",
    "now()",
    "now(timeZone='Asia/Tokyo')",
    "render(vars.welcome)",
    "render(vars.loop)",
    "renderOnce(trigger.body)",
    "fromJson(outputs.extract.body)",
    "json('[1]')",
    "lipsum(10**6)",
    "namespace(x=1)",
    "dict(a=1)",
    "cycler",
]
# Jinja's own filters as well as Kestra's; jq programs that end (an endless one is stopped by
# its worker's deadline after seconds: tests/test_expr_bounds.py).
FILTER_NAMES = sorted(
    {
        *FILTERS,
        "center",
        "indent",
        "format",
        "batch",
        "slice",
        "join",
        "wordwrap",
        "truncate",
        "list",
        "sort",
        "unique",
        "map",
        "select",
        "sum",
        "int",
        "float",
        "round",
        "abs",
        "string",
        "tojson",
        "random",
        "dictsort",
        "groupby",
        "items",
        "filesizeformat",
        "xmlattr",
    }
)
JQ_PROGRAMS = [
    "'.'",
    "'.a'",
    "'.[]'",
    "'[range(10)]'",
    "'range(1000000000)'",
    "'.a |'",
    "'limit(3; repeat(1))'",
    "'error(\"x\")'",
    "'{(.a): 1}'",
]
OPERATORS = [
    "+",
    "-",
    "*",
    "/",
    "//",
    "%",
    "**",
    "~",
    "==",
    "!=",
    "<",
    ">=",
    "and",
    "or",
    "in",
    "not in",
    "??",
    "???",
    "|",
    ".",
]
JUNK = [
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    "?",
    ":",
    "??",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "'",
    '"',
    "|",
    "~",
    ",",
    "\\",
    "\n",
    "endif",
    "endfor",
    "raw",
    "endraw",
    "-",
    "+",
]


def expressions() -> st.SearchStrategy[str]:
    atoms = st.sampled_from(NAMES) | st.sampled_from(LITERALS) | st.integers().map(str)

    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        args = st.lists(inner | st.sampled_from(JQ_PROGRAMS), max_size=3).map(", ".join)
        return (
            st.tuples(inner, st.sampled_from(OPERATORS), inner).map(" ".join)
            | st.tuples(inner, st.sampled_from(FILTER_NAMES), args).map(
                lambda t: f"{t[0]} | {t[1]}({t[2]})"
            )
            | st.tuples(
                inner, st.sampled_from(["jq", "replace", "date", "dateAdd", "split"]), args
            ).map(lambda t: f"{t[0]} | {t[1]}({t[2]})")
            | st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} ? {t[1]} : {t[2]}")
            | st.tuples(inner, st.sampled_from(["defined", "null", "empty", "json"])).map(
                lambda t: f"{t[0]} is {t[1]}"
            )
            | inner.map(lambda e: f"({e})")
            | inner.map(lambda e: f"[{e}]")
            | inner.map(lambda e: f"{e}[0]")
            | inner.map(lambda e: f"{e}.x")
            | st.tuples(st.sampled_from(sorted(FUNCTIONS)), inner).map(lambda t: f"{t[0]}({t[1]})")
        )

    return st.recursive(atoms, extend, max_leaves=8)


def templates() -> st.SearchStrategy[str]:
    expr = expressions()
    pieces = (
        expr.map(lambda e: "{{ " + e + " }}")
        | st.tuples(expr, expr).map(
            lambda t: f"{{% if {t[0]} %}}a{{% else %}}{{{{ {t[1]} }}}}{{% endif %}}"
        )
        | expr.map(lambda e: "{% for x in " + e + " %}{{ x }},{% endfor %}")
        | expr.map(
            lambda e: "{% for x in " + e + " %}{% for y in " + e + " %}.{% endfor %}{% endfor %}"
        )
        | expr.map(lambda e: "{% set y = " + e + " %}{{ y ~ y }}")
        | expr.map(
            lambda e: (
                "{% set s = " + e + " %}{% for i in range(64) %}"
                "{% set s = s ~ s %}{% endfor %}{{ s | length }}"
            )
        )
        | expr.map(lambda e: "{% macro m(v) %}{{ m(v) }}{% endmacro %}{{ m(" + e + ") }}")
        | expr.map(lambda e: "{% raw %}{{ " + e + " }}{% endraw %}")
        | st.sampled_from(JUNK)
        | st.text(max_size=6)
    )
    return st.lists(pieces, min_size=1, max_size=4).map("".join)


@contextmanager
def memory_bound() -> Iterator[None]:
    tracemalloc.start()
    try:
        yield
        _, peak = tracemalloc.get_traced_memory()
        assert peak < MEMORY_BOUND, f"the render peaked at {peak} bytes"
    finally:
        tracemalloc.stop()


RENDERER = Renderer(clock=FakeClock(datetime(2024, 5, 1, 8, 30, tzinfo=UTC)))


def assert_renders_or_explains(template: str) -> str | TemplateError:
    try:
        with memory_bound():
            result = RENDERER.render(template, CONTEXT)
    except TemplateError as exc:
        assert str(exc).startswith('cannot render "'), exc
        return exc
    assert isinstance(result, str)
    return result


@pytest.mark.timeout(90)
@FUZZ
@given(templates())
def test_generated_templates_render_or_raise_template_error(template: str) -> None:
    assert_renders_or_explains(template)


@pytest.mark.timeout(60)
@settings(FUZZ, max_examples=200)
@given(expressions())
def test_generated_conditions_are_a_bool_or_a_template_error(expression: str) -> None:
    try:
        assert isinstance(RENDERER.evaluate_bool("{{ " + expression + " }}", CONTEXT), bool)
    except TemplateError as exc:
        assert str(exc).startswith(("cannot render", "cannot use")), exc


@pytest.mark.timeout(60)
@settings(FUZZ, max_examples=200)
@given(st.text(max_size=60))
def test_any_text_renders_or_raises_template_error(text: str) -> None:
    assert_renders_or_explains(text)


# -- Java date patterns ---------------------------------------------------------------------

PATTERN_CHARS = list("GuyYQqMLwdDEahKkHmsSnVzOXxZ'[]#{}- :.,/TWbcefgijlprtv") + ["''"]
patterns = st.lists(st.sampled_from(PATTERN_CHARS), max_size=24).map("".join) | st.text(max_size=12)
moments = st.datetimes(
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=-5, minutes=-30)), timezone(timedelta(seconds=37))]
    )
)


@pytest.mark.timeout(60)
@settings(FUZZ, max_examples=600)
@given(patterns, moments)
def test_java_patterns_format_or_raise_value_error(pattern: str, moment: datetime) -> None:
    try:
        text = javadate.format_date(moment, pattern)
    except ValueError as exc:
        assert str(exc).startswith(("invalid date pattern", "pattern")), exc
    else:
        assert isinstance(text, str)
    try:
        parsed = javadate.parse(javadate.format_date(moment, "iso"), pattern)
    except ValueError as exc:
        assert str(exc).startswith(("invalid date pattern", "pattern", "cannot parse")), exc
    else:
        assert isinstance(parsed, datetime)


@pytest.mark.timeout(60)
@settings(FUZZ, max_examples=300)
@given(
    patterns,
    st.sampled_from(
        [
            "execution.startDate",
            "trigger.date",
            "inputs.n",
            "10**20",
            "-10**20",
            "2**62",
            "1e300",
            "'2024-13-45'",
            "now()",
        ]
    ),
    st.sampled_from(
        [
            "",
            ", timeZone='Europe/Paris'",
            ", timeZone='nope'",
            ", existingFormat='yyyy-MM-dd'",
            ", existingFormat='D:D'",
        ]
    ),
)
def test_the_date_filter_with_any_pattern_renders_or_raises_template_error(
    pattern: str, value: str, extra: str
) -> None:
    assert_renders_or_explains("{{ " + value + " | date(" + repr(pattern) + extra + ") }}")


@pytest.mark.timeout(60)
@settings(FUZZ, max_examples=300)
@given(
    moments,
    st.integers(),
    st.sampled_from(
        ["NANOS", "MILLIS", "HALF_DAYS", "DAYS", "WEEKS", "MONTHS", "MILLENNIA", "FORTNIGHTS"]
    ),
)
def test_date_arithmetic_gives_a_date_or_a_value_error(
    moment: datetime, amount: int, unit: str
) -> None:
    try:
        assert isinstance(javadate.add(moment, amount, unit), datetime)
    except ValueError as exc:
        assert "out of range" in str(exc) or "unknown unit" in str(exc), exc


# -- the limits the fuzzing needed ----------------------------------------------------------


def rendered_error(template: str, **context: Any) -> str:
    with memory_bound(), pytest.raises(TemplateError) as raised:
        RENDERER.render(template, {**CONTEXT, **context})
    return str(raised.value)


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ range(10**9) | length }}", "range of 1000000000 items is over the limit of 100000"),
        (
            "{{ range(0, 10**18, 10**12) | list }}",
            "range of 1000001 items is over the limit of 100000",
        ),
        (
            "{{ 'x' * 10**9 }}",
            "'x' * 1000000000 makes 1000000000 characters, over the limit of 10000000",
        ),
        (
            "{{ [1] * 10**9 }}",
            "[1] * 1000000000 makes 1000000000 items, over the limit of 10000000",
        ),
        (
            "{{ ('ab' * 50000) * 50000 }}",
            "a text of 100000 characters * 50000 makes 5000000000 characters, over the limit of "
            "10000000",
        ),
        ("{{ 9 ** (9 ** 9) }}", "9 ** 387420489 has more than 4300 digits"),
        (
            "{{ (10 ** 4000) * (10 ** 4000) }}",
            "4001-digit * 4001-digit number has more than 4300 digits",
        ),
        (
            "{% for i in range(10**5) %}{% for j in range(10**5) %}{% endfor %}{% endfor %}",
            "loops ran more than 1000000 times",
        ),
        (
            "{{ ('x' * 6000000) ~ ('x' * 6000000) }}",
            "text joined with ~ has 12000000 characters, over the limit of 10000000",
        ),
        (
            "{{ 'x'.ljust(10**9) }}",
            "ljust() width makes 1000000000 characters, over the limit of 10000000",
        ),
        (
            "{{ ('\\t' * 100).expandtabs(10**8) }}",
            "expandtabs() makes 10000000000 characters, over the limit of 10000000",
        ),
        (
            "{{ 'x' | center(10**9) }}",
            "center width makes 1000000000 characters, over the limit of 10000000",
        ),
        (
            "{{ 'a\\nb' | indent(10**9) }}",
            "indented text makes 2000000003 characters, over the limit of 10000000",
        ),
        ("{{ '%0999999999d' % 1 }}", "format width 999999999 is over the limit of 10000000"),
        (
            "{{ '%0999999999d' | format(1) }}",
            "format width 999999999 is over the limit of 10000000",
        ),
        ("{{ '{:>999999999}'.format(1) }}", "format width 999999999 is over the limit of 10000000"),
        (
            "{{ [1] | slice(10**9) | list }}",
            "slice into 1000000000 parts is over the limit of 100000",
        ),
        (
            "{{ [1] | batch(10**9, 0) | list }}",
            "batch size makes 1000000000 items, over the limit of 10000000",
        ),
        (
            "{{ range(100) | join('x' * 1000000) }}",
            "join separators makes 99000000 characters, over the limit of 10000000",
        ),
        (
            "{% for i in range(10) %}{{ 'x' * 10000000 }}{% endfor %}",
            "the text rendered is over the limit of 50000000 characters",
        ),
        ("{{ lipsum(10**6) }}", "unknown function 'lipsum'"),
        ("{{ 1 | jq('range(1000000000)') }}", "jq: the program gives more than 100000 results"),
        (
            "{{ execution.startDate | dateAdd(10**20, 'DAYS') }}",
            "dateAdd: 100000000000000000000 DAYS from 2024-05-01T08:30:00.123000+00:00 is out of "
            "range (years 1 to 9999)",
        ),
        ("{{ (2**62) | date }}", "date: timestamp 4611686018427387904 is out of range"),
        (
            "{{ '001:002' | date(existingFormat='D:D') }}",
            'date: pattern "D:D" cannot be used to read dates (a field appears twice)',
        ),
        (
            "{{ 'x' | replace({'(': 'y'}, regexp=true) }}",
            'replace: invalid regular expression "(" or replacement "y": missing ) at position 1',
        ),
    ],
)
def test_a_runaway_expression_is_a_template_error_naming_the_limit(
    template: str, reason: str
) -> None:
    assert rendered_error(template) == f'cannot render "{template}": {reason}'.replace("\n", "\\n")


def test_a_backtracking_regular_expression_is_stopped() -> None:
    template = "{{ ('a' * 40 ~ '!') | replace({'(a|aa)+$': 'x'}, regexp=true) }}"
    assert rendered_error(template) == (
        f'cannot render "{template}": replace: regular expression "(a|aa)+$" ran longer than '
        "2 s (nested repetition such as (a+)+ backtracks without end)"
    )


def test_values_up_to_the_limits_still_render() -> None:
    assert len(RENDERER.render("{{ 'x' * 10000000 }}", CONTEXT)) == expr_limits.MAX_LENGTH
    assert RENDERER.render("{{ range(100000) | length }}", CONTEXT) == "100000"
    assert RENDERER.render("{{ (10 ** 4000) | string | length }}", CONTEXT) == "4001"
    assert (
        RENDERER.render(
            "{% for i in range(999) %}{% for j in range(1000) %}{% endfor %}{% endfor %}done",
            CONTEXT,
        )
        == "done"
    )
    assert RENDERER.render("{{ '%5s|%-3d' % ('ab', 7) }}", CONTEXT) == "   ab|7  "
    assert RENDERER.render("{{ 'x'.ljust(3) ~ '{:>4}'.format(1) }}", CONTEXT) == "x     1"
    assert RENDERER.render("{{ 'a\\nb' | nindent(2) }}", CONTEXT) == "\n  a\n  b"
    assert RENDERER.render("{{ 0 | jq('limit(3; repeat(1))') }}", CONTEXT) == "[1,1,1]"
    loop = "{% for i in [1, 2, 3] %}{{ i }}{% endfor %}"  # compiled once, counted each time
    assert [RENDERER.render(loop, CONTEXT) for _ in range(2)] == ["123", "123"]


def test_the_loop_budget_spans_nested_renders() -> None:
    loop = "{% for i in range(100000) %}{% endfor %}"
    template = "{% for i in range(20) %}{{ render(vars.inner) }}{% endfor %}"
    assert rendered_error(template, vars={"inner": loop}).endswith(
        "loops ran more than 1000000 times"
    )
