"""Kestra's filters (`daemon.expr_filters`, `daemon.javadate`) as flows call them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from daemon.expr.renderer import Renderer
from daemon.sdk.clock import FakeClock
from daemon.sdk.errors import TemplateError

VARS: dict[str, Any] = {
    "inputs": {
        "name": "Ada",
        "count": "3",
        "ratio": "3.5",
        "empty": [],
        "nothing": None,
        "items": ["a", "b"],
    },
    "outputs": {"extract": {"value": "42", "uri": "kestra://x/data.csv"}},
    "trigger": {"date": "2019-03-01T09:00:00Z"},
}


@pytest.fixture
def renderer() -> Renderer:
    return Renderer(clock=FakeClock(datetime(2024, 5, 1, 8, 30, tzinfo=UTC)))


def render(renderer: Renderer, template: str, **extra: Any) -> str:
    return renderer.render(template, {**VARS, **extra})


def error(renderer: Renderer, template: str, **extra: Any) -> str:
    with pytest.raises(TemplateError) as raised:
        render(renderer, template, **extra)
    return str(raised.value)


# -- date filters -----------------------------------------------------------------------


def test_date_filter_formats_an_iso_string(renderer: Renderer) -> None:
    assert render(renderer, "{{ trigger.date | date('yyyy-MM') }}") == "2019-03"


@pytest.mark.parametrize(
    ("pattern", "formatted"),
    [
        ("yyyy-MM-dd'T'HH:mm:ss.SSSXXX", "2019-03-01T09:05:07.120Z"),
        ("yy M MMM MMMM d dd", "19 3 Mar March 1 01"),
        ("H HH h hh a m mm s ss", "9 09 9 09 AM 5 05 7 07"),
        ("E EEE EEEE D", "Fri Fri Friday 60"),
        ("SSSSSS", "120000"),
        ("X XX XXX Z z", "Z Z Z +0000 UTC"),
        ("'week' w, 'Q'Q", "week 9, Q1"),
        ("h 'o''clock' ''", "9 o'clock '"),
        ("iso", "2019-03-01T09:05:07.120000Z"),
        ("iso_sec", "2019-03-01T09:05:07Z"),
        ("iso_date", "2019-03-01Z"),
        ("iso_date_time", "2019-03-01T09:05:07.12Z"),
        ("iso_local_date", "2019-03-01"),
        ("sql", "2019-03-01 09:05:07.120000"),
        ("rfc_1123_date_time", "Fri, 1 Mar 2019 09:05:07 GMT"),
    ],
)
def test_date_filter_understands_java_patterns(
    renderer: Renderer, pattern: str, formatted: str
) -> None:
    when = "2019-03-01T09:05:07.120Z"
    assert render(renderer, "{{ when | date(p) }}", when=when, p=pattern) == formatted


def test_date_filter_converts_to_the_given_time_zone(renderer: Renderer) -> None:
    template = "{{ trigger.date | date('yyyy-MM-dd HH:mm XXX VV', timeZone='America/New_York') }}"
    assert render(renderer, template) == "2019-03-01 04:00 -05:00 America/New_York"


@pytest.mark.parametrize(
    ("value", "formatted"),
    [
        (datetime(2019, 3, 1, 9, 0, tzinfo=UTC), "2019-03-01 09:00"),
        (datetime(2019, 3, 1, 9, 0), "2019-03-01 09:00"),
        (date(2019, 3, 1), "2019-03-01 12:00"),
        (1551430800, "2019-03-01 09:00"),
        ("2019-03-01T11:00:00+02:00", "2019-03-01 09:00"),
        ("2019-03-01T09:00:00", "2019-03-01 09:00"),
        ("2019-03-01T10:00:00+01:00[Europe/Paris]", "2019-03-01 09:00"),
    ],
)
def test_date_filter_accepts_dates_strings_and_epoch_seconds(
    renderer: Renderer, value: Any, formatted: str
) -> None:
    assert render(renderer, "{{ value | date('yyyy-MM-dd HH:mm') }}", value=value) == formatted


def test_date_filter_reads_a_string_with_an_existing_format(renderer: Renderer) -> None:
    template = "{{ '24 July, 2001' | date('yyyy-MM-dd', existingFormat='dd MMMM, yyyy') }}"
    assert render(renderer, template) == "2001-07-24"


def test_date_filter_passes_null_through(renderer: Renderer) -> None:
    assert render(renderer, "{{ inputs.nothing | date('yyyy') }}") == ""


def test_date_filter_with_text_that_is_not_a_date_fails(renderer: Renderer) -> None:
    assert error(renderer, "{{ inputs.name | date('yyyy') }}") == (
        'cannot render "{{ inputs.name | date(\'yyyy\') }}": date: cannot parse "Ada" as a'
        " date (expected ISO-8601; give existingFormat for other layouts)"
    )


def test_date_filter_with_text_not_in_the_existing_format_fails(renderer: Renderer) -> None:
    assert error(renderer, "{{ '2001/07' | date('yyyy', existingFormat='yyyy-MM') }}") == (
        "cannot render \"{{ '2001/07' | date('yyyy', existingFormat='yyyy-MM') }}\": date:"
        ' cannot parse "2001/07" with pattern "yyyy-MM"'
    )


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("yyyy-bb", "unknown letter 'b'"),
        ("ddd", "too many letters 'ddd'"),
        ("yyyy'T", "unterminated quote"),
        ("yyyy{", "reserved character '{'"),
    ],
)
def test_date_filter_with_a_bad_pattern_fails(
    renderer: Renderer, pattern: str, reason: str
) -> None:
    assert error(renderer, "{{ now() | date(p) }}", p=pattern) == (
        f'cannot render "{{{{ now() | date(p) }}}}": date: invalid date pattern "{pattern}":'
        f" {reason}"
    )


def test_date_filter_with_an_unknown_zone_fails(renderer: Renderer) -> None:
    assert error(renderer, "{{ now() | date('HH', timeZone='Nowhere') }}") == (
        "cannot render \"{{ now() | date('HH', timeZone='Nowhere') }}\": date: unknown time"
        ' zone "Nowhere"'
    )


@pytest.mark.parametrize(
    ("amount", "unit", "result"),
    [
        (1, "DAYS", "2024-02-01T10:00:00.000000Z"),
        (-1, "WEEKS", "2024-01-24T10:00:00.000000Z"),
        (1, "MONTHS", "2024-02-29T10:00:00.000000Z"),
        (13, "MONTHS", "2025-02-28T10:00:00.000000Z"),
        (-1, "YEARS", "2023-01-31T10:00:00.000000Z"),
        (36, "HOURS", "2024-02-01T22:00:00.000000Z"),
        (1, "HALF_DAYS", "2024-01-31T22:00:00.000000Z"),
        (-90, "MINUTES", "2024-01-31T08:30:00.000000Z"),
        (1500, "MILLIS", "2024-01-31T10:00:01.500000Z"),
    ],
)
def test_date_add_uses_chrono_units(
    renderer: Renderer, amount: int, unit: str, result: str
) -> None:
    template = "{{ '2024-01-31T10:00:00Z' | dateAdd(amount, unit) }}"
    assert render(renderer, template, amount=amount, unit=unit) == result


def test_date_add_keeps_the_wall_clock_across_a_dst_change(renderer: Renderer) -> None:
    template = (
        "{{ '2024-03-30T12:00:00+01:00' | dateAdd(1, 'DAYS', 'iso_offset_date_time',"
        " timeZone='Europe/Paris') }}"
    )
    assert render(renderer, template) == "2024-03-31T12:00:00+02:00"


def test_date_add_with_an_unknown_unit_fails(renderer: Renderer) -> None:
    assert error(renderer, "{{ now() | dateAdd(1, 'FORTNIGHTS') }}") == (
        "cannot render \"{{ now() | dateAdd(1, 'FORTNIGHTS') }}\": dateAdd: unknown unit"
        ' "FORTNIGHTS" (expected one of NANOS, MICROS, MILLIS, SECONDS, MINUTES, HOURS,'
        " HALF_DAYS, DAYS, WEEKS, MONTHS, YEARS, DECADES, CENTURIES, MILLENNIA)"
    )


def test_timestamp_filters_give_epoch_at_each_precision(renderer: Renderer) -> None:
    template = (
        "{{ d | timestamp }} {{ d | timestampMilli }} {{ d | timestampMicro }}"
        " {{ d | timestampNano }}"
    )
    assert render(renderer, template, d="2019-03-01T09:00:00.5Z") == (
        "1551430800 1551430800500 1551430800500000 1551430800500000000"
    )


# -- data filters -----------------------------------------------------------------------


def test_json_filters_print_compact_json(renderer: Renderer) -> None:
    template = "{{ {'a': [1, 'é']} | toJson }} {{ 'x' | json }} {{ none | toJson }}"
    assert render(renderer, template) == '{"a":[1,"é"]} "x" null'


def test_jq_filter_returns_the_list_of_results(renderer: Renderer) -> None:
    assert render(renderer, "{{ outputs | jq('.extract.value') }}") == '["42"]'
    assert render(renderer, "{{ outputs | jq('.extract.value') | first }}") == "42"
    assert render(renderer, "{{ [1, 2, 3] | jq('.[] | . * 2') }}") == "[2,4,6]"


def test_jq_filter_with_a_bad_program_fails(renderer: Renderer) -> None:
    assert error(renderer, "{{ [1] | jq('.[') }}") == (
        "cannot render \"{{ [1] | jq('.[') }}\": jq: syntax error, unexpected end of file at"
        " <top-level>, line 1, column 2"
    )


@pytest.mark.parametrize(
    ("template", "result"),
    [
        ("{{ inputs.items | first }}{{ inputs.items | last }}", "ab"),
        ("{{ 'Kestra' | first }}{{ 'Kestra' | last }}", "Ka"),
        ("{{ inputs.empty | first }}", ""),
        ("{{ outputs.extract | keys }}", '["value","uri"]'),
        ("{{ inputs.items | keys }}", "[0,1]"),
        ("{{ outputs.extract | values }}", '["42","kestra://x/data.csv"]'),
        (
            "{{ inputs.items | length }}{{ inputs.name | length }}{{ inputs.nothing | length }}",
            "230",
        ),
        ("{{ inputs.count | number + 1 }}", "4"),
        ("{{ inputs.ratio | number * 2 }}", "7.0"),
        ("{{ '12' | number('DOUBLE') }}", "12.0"),
        ("{{ [1, 2, 3, 4, 5] | chunk(2) }}", "[[1,2],[3,4],[5]]"),
        ("{{ [1, 2, 1, 3, 2] | distinct }}", "[1,2,3]"),
        ("{{ [3, 1, 2] | rsort }}{{ [3, 1, 2] | reverse }}", "[3,2,1][2,1,3]"),
        ("{{ true | string }}", "true"),
    ],
)
def test_collection_and_number_filters(renderer: Renderer, template: str, result: str) -> None:
    assert render(renderer, template) == result


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ 'abc' | number }}", 'number: cannot parse "abc" as a number'),
        ("{{ '3.5' | number('INT') }}", 'number: "3.5" is not an integer'),
        (
            "{{ '3' | number('SHORT') }}",
            'number: unknown type "SHORT" (expected one of INT, LONG, BIGINTEGER, FLOAT, DOUBLE,'
            " BIGDECIMAL)",
        ),
        ("{{ 'abc' | values }}", "values: a str has no values"),
    ],
)
def test_filters_refusing_their_input_fail_naming_the_filter(
    renderer: Renderer, template: str, reason: str
) -> None:
    assert error(renderer, template) == f'cannot render "{template}": {reason}'


# -- string filters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "result"),
    [
        ("{{ ' Ada ' | trim | upper }}{{ 'ADA' | lower }}", "ADAada"),
        ("{{ 'a-b-a' | replace({'a': 'x', '-': '+'}) }}", "x+b+x"),
        ("{{ 'a-b-a' | replace('a', 'x') }}", "x-b-x"),
        ("{{ 'v1.2' | replace({'(\\\\d)': '<$1>'}, regexp=true) }}", "v<1>.<2>"),
        ("{{ 'a,b,c' | split(',') | join(' & ') }}", "a & b & c"),
        ("{{ 'a,b,c' | split(',', 2) }}", '["a","b,c"]'),
        ("{{ [1, none, true] | join(',') }}", "1,,true"),
        ("{{ 'Crème Brûlée: 2 pots!' | slugify }}", "creme-brulee-2-pots"),
        ("{{ 'this is a long sentence.' | abbreviate(7) }}", "this..."),
        ("{{ 'short' | abbreviate(7) }}", "short"),
        (
            "{{ 'article TITLE' | capitalize }}|{{ 'article title' | title }}",
            "Article TITLE|Article Title",
        ),
        ("{{ 'test' | base64encode }}|{{ 'dGVzdA==' | base64decode }}", "dGVzdA==|test"),
        ("{{ 'a b&c~*' | urlencode }}|{{ 'a+b%26c' | urldecode }}", "a+b%26c%7E*|a b&c"),
        ("{{ 'hey' | md5 }}", "6057f13c496ecf7fd777ceb9e79ae285"),
        ("{{ 'hey' | sha1 }}", "7f550a9f4c44173a37664d938f1355f0f92a47a7"),
        (
            "{{ 'hey' | sha256 }}",
            "fa690b82061edfd2852629aeba8a8977b57e40fcb77d1a7a28b26cba62591204",
        ),
        ("{{ 'hey' | sha512 | length }}", "128"),
        (
            "{{ 'report.csv' | startsWith('rep') }}{{ 'report.csv' | endsWith('.json') }}",
            "truefalse",
        ),
        ("{{ 'a/b/c' | substringBefore('/') }} {{ 'a/b/c' | substringBeforeLast('/') }}", "a a/b"),
        ("{{ 'a/b/c' | substringAfter('/') }} {{ 'a/b/c' | substringAfterLast('/') }}", "b/c c"),
        ("{{ 'abc' | substringAfter('/') }}|{{ 'abc' | substringBefore('/') }}", "|abc"),
        ("{{ inputs.nothing | upper }}", ""),
    ],
)
def test_string_filters(renderer: Renderer, template: str, result: str) -> None:
    assert render(renderer, template) == result


def test_base64decode_with_invalid_input_fails(renderer: Renderer) -> None:
    assert error(renderer, "{{ 'not base64!' | base64decode }}") == (
        "cannot render \"{{ 'not base64!' | base64decode }}\": base64decode: the input is not"
        " valid base64"
    )


def test_pebble_raw_filter_leaves_the_value_as_it_is(renderer: Renderer) -> None:
    """Pebble's core `raw` filter (pebbletemplates.io "raw"): podium never autoescapes, so
    it has nothing to undo, and a flow written with it renders as in Kestra."""
    out = renderer.render("{{ ('<b>' ~ inputs.name ~ '</b>') | raw }}", VARS)
    assert out == "<b>Ada</b>"
    assert renderer.render("{{ inputs.items | raw | length }}", VARS) == "2"
