"""Kestra (Pebble) expressions rendered by `daemon.expr.renderer.Renderer`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from daemon.expr.pebble import rewrite
from daemon.expr.renderer import Renderer
from daemon.sdk.clock import FakeClock
from daemon.sdk.errors import TemplateError

NOW = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)

VARS: dict[str, Any] = {
    "inputs": {
        "name": "Ada",
        "count": "3",
        "ratio": "3.5",
        "blank": "  ",
        "empty": [],
        "flag": True,
        "nothing": None,
        "items": ["a", "b"],
    },
    "outputs": {"extract": {"value": "42", "uri": "kestra://x/data.csv"}},
    "vars": {"welcome_message": "Hello, {{ inputs.name }}!"},
    "trigger": {"date": "2019-03-01T09:00:00Z", "body": "{{ 7*7 }}"},
}


@pytest.fixture
def renderer() -> Renderer:
    return Renderer(clock=FakeClock(NOW))


def render(renderer: Renderer, template: str, **extra: Any) -> str:
    return renderer.render(template, {**VARS, **extra})


def error(renderer: Renderer, template: str, **extra: Any) -> str:
    with pytest.raises(TemplateError) as raised:
        render(renderer, template, **extra)
    return str(raised.value)


# -- plain text and caching ---------------------------------------------------------------


def test_text_without_expressions_is_returned_as_is(renderer: Renderer) -> None:
    text = "no {braces} here, {# nor this #}"
    assert renderer.render(text, {}) is text
    assert renderer._template.cache_info().currsize == 0  # type: ignore[attr-defined]


def test_compiled_templates_are_cached(renderer: Renderer) -> None:
    for _ in range(3):
        assert render(renderer, "{{ inputs.name }}") == "Ada"
    info = renderer._template.cache_info()  # type: ignore[attr-defined]
    assert (info.misses, info.hits) == (1, 2)


def test_trailing_newline_of_a_block_scalar_is_kept(renderer: Renderer) -> None:
    assert render(renderer, "echo {{ inputs.name }}\n") == "echo Ada\n"


# -- how values print -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (3, "3"),
        (2.5, "2.5"),
        ({"a": [1, "é"], "b": None}, '{"a":[1,"é"],"b":null}'),
        (["x", {"y": True}], '["x",{"y":true}]'),
        (datetime(2019, 3, 1, 9, 0, tzinfo=UTC), "2019-03-01T09:00:00Z"),
        (
            datetime(2019, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=2))),
            "2019-03-01T09:00:00+02:00",
        ),
        ({"when": datetime(2019, 3, 1, tzinfo=UTC)}, '{"when":"2019-03-01T00:00:00Z"}'),
    ],
)
def test_values_print_as_pebble_prints_them(renderer: Renderer, value: Any, printed: str) -> None:
    assert render(renderer, "{{ value }}", value=value) == printed


def test_concatenation_prints_operands_as_pebble_does(renderer: Renderer) -> None:
    assert render(renderer, "{{ 'flag=' ~ inputs.flag ~ ',' ~ true ~ 1 }}") == "flag=true,true1"


# -- undefined values -------------------------------------------------------------------


def test_undefined_variable_error_names_it(renderer: Renderer) -> None:
    assert error(renderer, "{{ input.name }}") == (
        "cannot render \"{{ input.name }}\": 'input' is undefined"
    )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ namespace }}", "'namespace' is undefined"),
        ("{{ namespace.id }}", "'namespace' is undefined"),
        ("{{ dict(a=1) }}", "unknown function 'dict'"),
        ("{{ cycler(1, 2).next() }}", "unknown function 'cycler'"),
        ("{{ joiner(',')() }}", "unknown function 'joiner'"),
        ("{% set ns = namespace(s=1) %}{{ ns.s }}", "unknown function 'namespace'"),
        ("{{ lipsum(2) }}", "unknown function 'lipsum'"),
    ],
)
def test_names_jinja_defines_and_pebble_does_not_are_undefined(
    renderer: Renderer, template: str, message: str
) -> None:
    """Pebble has no `namespace`, `dict`, `cycler`, `joiner` or `lipsum`: in Kestra they are
    undefined names (FlowTriggerInvalidWhenCycleTest renders `{{ namespace }}` as its
    example of a `when` that fails), not objects of the template engine."""
    assert error(renderer, template) == f'cannot render "{template}": {message}'


def test_missing_output_error_names_it_and_lists_the_known_ones(renderer: Renderer) -> None:
    assert error(renderer, "{{ outputs.nope.value }}") == (
        "cannot render \"{{ outputs.nope.value }}\": 'nope' is undefined (available keys: extract)"
    )


def test_misspelt_attribute_error_lists_the_available_keys(renderer: Renderer) -> None:
    assert error(renderer, "{{ outputs.extract.vlaue }}") == (
        "cannot render \"{{ outputs.extract.vlaue }}\": 'vlaue' is undefined"
        " (available keys: value, uri)"
    )


def test_missing_key_of_an_empty_map_says_so(renderer: Renderer) -> None:
    assert error(renderer, "{{ labels.team }}", labels={}) == (
        "cannot render \"{{ labels.team }}\": 'team' is undefined (no keys available)"
    )


def test_index_past_the_end_error_gives_the_length(renderer: Renderer) -> None:
    assert error(renderer, "{{ inputs.items[5] }}") == (
        'cannot render "{{ inputs.items[5] }}": index 5 is out of range (length 2)'
    )


def test_attribute_of_text_error_names_the_type(renderer: Renderer) -> None:
    assert error(renderer, "{{ inputs.name.first }}") == (
        "cannot render \"{{ inputs.name.first }}\": 'str' object has no attribute 'first'"
    )


def test_a_null_value_is_not_defined_as_in_pebble(renderer: Renderer) -> None:
    """Pebble's DefinedTest is its NullTest inverted: a variable holding null is not
    defined, while `???` (undefined coalescing) keeps that null and replaces only what is
    missing (Kestra's expression docs)."""
    variables = {"inputs": {"crash": None, "zero": 0, "empty": ""}}
    template = (
        "{{ inputs.crash is defined }}|{{ inputs.crash is not defined }}|"
        "{{ inputs.zero is defined }}|{{ inputs.empty is defined }}|{{ inputs.nope is defined }}|"
        "{{ inputs.crash ??? 'kept' }}|{{ inputs.nope ??? 'replaced' }}|{{ inputs.crash ?? 'd' }}"
    )
    assert renderer.render(template, variables) == "false|true|true|true|false||replaced|d"


def test_undefined_chain_can_be_tested_with_is_defined(renderer: Renderer) -> None:
    template = "{{ outputs.nope.value.deeper is defined }}|{{ outputs.extract.value is defined }}"
    assert render(renderer, template) == "false|true"


@pytest.mark.parametrize(
    "template",
    [
        "{{ outputs.nope.value == 1 }}",
        "{% if outputs.nope.value %}x{% endif %}",
        "{% for x in outputs.nope.value %}{{ x }}{% endfor %}",
        "{{ outputs.nope.value | upper }}",
        "{{ outputs.nope.value | length }}",
        "{{ outputs.nope.value ~ 'x' }}",
        "{{ [outputs.nope.value] }}",
    ],
)
def test_using_an_undefined_value_fails_naming_it(renderer: Renderer, template: str) -> None:
    assert error(renderer, template) == (
        f"cannot render \"{template}\": 'nope' is undefined (available keys: extract)"
    )


def test_map_keys_win_over_dict_methods(renderer: Renderer) -> None:
    assert render(renderer, "{{ inputs.items | join('+') }}") == "a+b"


# -- Pebble operators -------------------------------------------------------------------


def test_coalesce_uses_default_when_output_missing(renderer: Renderer) -> None:
    assert render(renderer, "{{ outputs.nope.value ?? 'none yet' }}") == "none yet"


def test_coalesce_uses_default_when_value_is_null(renderer: Renderer) -> None:
    assert render(renderer, "{{ inputs.nothing ?? 'fallback' }}") == "fallback"


def test_coalesce_keeps_a_defined_value(renderer: Renderer) -> None:
    assert render(renderer, "{{ outputs.extract.value ?? 'fallback' }}") == "42"


def test_coalesce_chains_to_the_first_present_value(renderer: Renderer) -> None:
    template = "{{ outputs.a.value ?? inputs.nothing ?? inputs.name ?? 'last' }}"
    assert render(renderer, template) == "Ada"
    assert render(renderer, "{{ x ?? y ?? 'last' }}") == "last"


def test_coalesce_binds_tighter_than_concatenation(renderer: Renderer) -> None:
    assert render(renderer, "{{ 'id-' ~ outputs.nope ?? 'none' ~ '!' }}") == "id-none!"


def test_coalesce_result_goes_through_a_following_filter(renderer: Renderer) -> None:
    assert render(renderer, "{{ outputs.nope ?? 'none' | upper }}") == "NONE"
    assert render(renderer, "{{ inputs.name ?? 'none' | upper }}") == "ADA"


def test_coalesce_accepts_a_negative_number_and_literals(renderer: Renderer) -> None:
    assert render(renderer, "{{ x ?? -1 }}|{{ x ?? [1, 2] }}|{{ x ?? {'a': 1} }}") == (
        '-1|[1,2]|{"a":1}'
    )


def test_undefined_coalescing_keeps_null_but_replaces_undefined(renderer: Renderer) -> None:
    assert render(renderer, "{{ inputs.nothing ??? 'x' }}|{{ inputs.nope ??? 'y' }}") == "|y"


@pytest.mark.parametrize(("flag", "printed"), [(True, "on"), (False, "off")])
def test_ternary_picks_a_branch(renderer: Renderer, flag: bool, printed: str) -> None:
    assert render(renderer, "{{ flag ? 'on' : 'off' }}", flag=flag) == printed


@pytest.mark.parametrize(("n", "printed"), [(1, "one"), (2, "two"), (3, "many")])
def test_nested_ternaries_are_right_associative(renderer: Renderer, n: int, printed: str) -> None:
    template = "{{ n == 1 ? 'one' : n == 2 ? 'two' : 'many' }}"
    assert render(renderer, template, n=n) == printed


def test_ternary_inside_the_then_branch(renderer: Renderer) -> None:
    assert render(renderer, "{{ true ? false ? 'a' : 'b' : 'c' }}") == "b"


def test_colons_of_dict_literals_and_slices_are_not_ternary_colons(renderer: Renderer) -> None:
    template = "{{ {'k': inputs.flag ? 'yes' : 'no', 'n': 1} }}|{{ inputs.name[0:2] }}"
    assert render(renderer, template) == '{"k":"yes","n":1}|Ad'


def test_ternary_and_coalesce_inside_call_arguments(renderer: Renderer) -> None:
    template = "{{ inputs.items | join(inputs.flag ? '-' : '+') }}{{ now(timeZone=tz ?? 'UTC') }}"
    assert render(renderer, template) == "a-b2024-05-01T08:30:00Z"


def test_ternary_condition_combines_with_coalesce(renderer: Renderer) -> None:
    assert render(renderer, "{{ outputs.nope ?? false ? 'y' : 'n' }}") == "n"


def test_question_marks_in_strings_and_text_are_left_alone(renderer: Renderer) -> None:
    template = "a?b {{ '?' ~ \"??\" ~ 'x ? y : z' }} c??"
    assert render(renderer, template) == "a?b ???x ? y : z c??"


def test_coalesce_in_if_for_and_set_statements(renderer: Renderer) -> None:
    template = (
        "{% if outputs.nope ?? true %}T{% endif %}"
        "{% for i in outputs.nope ?? [1, 2] %}{{ i }}{% endfor %}"
        "{% set x = outputs.nope ??? 'set' %}{{ x }}"
    )
    assert render(renderer, template) == "T12set"


def test_comments_and_raw_blocks_are_not_rewritten(renderer: Renderer) -> None:
    template = "{# a ?? b #}{% raw %}{{ a ?? b }}{% endraw %}"
    assert render(renderer, template) == "{{ a ?? b }}"


def test_rewrite_only_touches_tags_with_pebble_operators() -> None:
    assert rewrite("x ? {{ a }} : {{ b ?? c }}") == (
        "x ? {{ a }} : {{ ((b) if (b) is not null else (c)) }}"
    )
    assert rewrite("{{- a ? b : c -}}") == "{{- ((b) if (a) else (c)) -}}"


def test_jinja_operators_work(renderer: Renderer) -> None:
    template = "{{ 1 == 1 and not false }}|{{ false or inputs.flag }}|{{ 'a' ~ 'b' }}"
    assert render(renderer, template) == "true|true|ab"


def test_is_null_is_true_for_null_and_undefined(renderer: Renderer) -> None:
    template = (
        "{{ inputs.nothing is null }}{{ inputs.nope is null }}"
        "{{ inputs.name is null }}{{ inputs.name is not null }}{{ null is null }}"
    )
    assert render(renderer, template) == "truetruefalsetruetrue"


def test_is_empty_covers_null_blank_text_and_empty_collections(renderer: Renderer) -> None:
    template = (
        "{{ inputs.nothing is empty }}{{ inputs.blank is empty }}"
        "{{ inputs.empty is empty }}{{ {} is empty }}{{ inputs.nope is empty }}"
        "{{ inputs.name is empty }}"
    )
    assert render(renderer, template) == "truetruetruetruetruefalse"


def test_default_filter_treats_null_undefined_and_blank_as_missing(renderer: Renderer) -> None:
    template = (
        "{{ inputs.nothing | default('n') }}{{ outputs.x.y | default('u') }}"
        "{{ inputs.blank | default('b') }}{{ inputs.name | default('d') }}"
    )
    assert render(renderer, template) == "nubAda"


# -- functions --------------------------------------------------------------------------


def test_render_function_renders_a_template_held_in_a_variable(renderer: Renderer) -> None:
    assert render(renderer, "{{ render(vars.welcome_message) }}") == "Hello, Ada!"


def test_render_function_repeats_until_the_text_settles(renderer: Renderer) -> None:
    extra = {"a": "{{ b }}", "b": "{{ c }}", "c": "done"}
    assert render(renderer, "{{ render(a) }}", **extra) == "done"
    assert render(renderer, "{{ render(a, recursive=false) }}", **extra) == "{{ c }}"
    assert render(renderer, "{{ renderOnce(a) }}", **extra) == "{{ c }}"


def test_render_function_returns_other_values_unchanged(renderer: Renderer) -> None:
    assert render(renderer, "{{ render(inputs.items) }}") == '["a","b"]'


def test_render_function_stops_a_template_that_never_settles(renderer: Renderer) -> None:
    message = error(renderer, "{{ render(a) }}", a="{{ b }}", b="{{ a }}")
    assert message == 'cannot render "{{ render(a) }}": render() still changing after 10 rounds'


def test_render_function_stops_a_template_that_renders_itself(renderer: Renderer) -> None:
    template = "{{ render(me) }}"
    prefix = f'cannot render "{template}": '
    assert error(renderer, template, me=template) == (
        prefix * 11 + "render() nested more than 10 levels deep"
    )


def test_render_function_error_names_both_templates(renderer: Renderer) -> None:
    assert error(renderer, "{{ render(t) }}", t="Hi {{ inputs.nmae }}") == (
        'cannot render "{{ render(t) }}": cannot render "Hi {{ inputs.nmae }}": '
        "'nmae' is undefined (available keys: name, count, ratio, blank, empty, flag, "
        "nothing, items)"
    )


def test_now_comes_from_the_clock(renderer: Renderer) -> None:
    assert render(renderer, "{{ now() }}") == "2024-05-01T08:30:00Z"
    assert render(renderer, "{{ now(timeZone='Europe/Paris') }}") == "2024-05-01T10:30:00+02:00"


def test_now_with_an_unknown_zone_fails(renderer: Renderer) -> None:
    assert error(renderer, "{{ now(timeZone='Mars/Olympus') }}") == (
        "cannot render \"{{ now(timeZone='Mars/Olympus') }}\": "
        'now: unknown time zone "Mars/Olympus"'
    )


def test_from_json_function_and_filter(renderer: Renderer) -> None:
    text = '{"a": [1, 2], "b": "é"}'
    assert render(renderer, "{{ fromJson(t).a[1] }}|{{ (t | fromJson).b }}", t=text) == "2|é"
    assert render(renderer, "{{ json(t).b }}", t=text) == "é"


def test_from_json_with_invalid_text_fails(renderer: Renderer) -> None:
    assert error(renderer, "{{ fromJson('{') }}") == (
        "cannot render \"{{ fromJson('{') }}\": fromJson: Expecting property name enclosed in"
        " double quotes: line 1 column 2 (char 1)"
    )


def test_range_includes_its_end_as_pebbles_does(renderer: Renderer) -> None:
    """Kestra docs, expressions "range" (Pebble's RangeFunction): `range(0, 3)` is [0, 1, 2, 3];
    the increment may be negative, and single characters make a range too."""
    assert render(renderer, "{% for i in range(1, 4) %}{{ i }}{% endfor %}") == "1234"
    assert render(renderer, "{{ range(0, 6, 2) }} {{ range(3, 1, -1) }}") == "[0,2,4,6] [3,2,1]"
    assert render(renderer, "{{ range('a', 'c') | join }}") == "abc"
    assert render(renderer, "{{ range(3) }}") == "[0,1,2]"  # no Pebble form: Jinja's count


def test_functions_given_per_call_are_callable(renderer: Renderer) -> None:
    functions = {"secret": lambda name: f"<{name}>", "kv": lambda key: {"k": key}}
    result = renderer.render("{{ secret('TOKEN') }} {{ kv('a').k }}", VARS, functions)
    assert result == "<TOKEN> a"


# -- sandbox and data from outside -------------------------------------------------------


def test_values_from_outside_are_never_rendered(renderer: Renderer) -> None:
    assert render(renderer, "{{ trigger.body }}") == "{{ 7*7 }}"
    assert render(renderer, "{{ body }}", body="{% for x in range(3) %}x{% endfor %}") == (
        "{% for x in range(3) %}x{% endfor %}"
    )


def test_sandbox_refuses_dunder_attributes(renderer: Renderer) -> None:
    assert error(renderer, "{{ ''.__class__.__mro__ }}") == (
        "cannot render \"{{ ''.__class__.__mro__ }}\": access to attribute '__class__' of"
        " 'str' object is unsafe."
    )


def test_sandbox_refuses_to_change_the_variables(renderer: Renderer) -> None:
    assert error(renderer, "{{ inputs.items.append('c') }}") == (
        "cannot render \"{{ inputs.items.append('c') }}\": access to attribute 'append' of"
        " 'list' object is unsafe."
    )
    assert VARS["inputs"]["items"] == ["a", "b"]


# -- malformed templates ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ inputs.name", "unexpected end of template, expected 'end of print statement'."),
        ("{{ inputs.name }", "unexpected '}'"),
        (
            "{% if true %}x",
            "Unexpected end of template. Jinja was looking for the following tags:"
            " 'elif' or 'else' or 'endif'. The innermost block that needs to be"
            " closed is 'if'.",
        ),
        ("{{ inputs.name | nope }}", "No filter named 'nope'."),
        ("{{ nope('x') }}", "unknown function 'nope'"),
        ("{{ x ? 1 }}", "unexpected char '?' at 5"),
        ("{{ 1 / 0 }}", "ZeroDivisionError: division by zero"),
    ],
)
def test_malformed_template_fails_with_the_reason(
    renderer: Renderer, template: str, reason: str
) -> None:
    assert error(renderer, template) == f'cannot render "{template}": {reason}'


def test_error_in_a_multi_line_template_gives_the_line(renderer: Renderer) -> None:
    assert error(renderer, "echo start\necho {{ nope }}\n") == (
        "cannot render \"echo start\\necho {{ nope }}\\n\": 'nope' is undefined (line 2)"
    )
    assert error(renderer, "a\nb\n{{ x | nope }}") == (
        "cannot render \"a\\nb\\n{{ x | nope }}\": No filter named 'nope'. (line 3)"
    )


def test_error_shows_a_long_template_cut_short(renderer: Renderer) -> None:
    template = "x" * 300 + "{{ nope }}"
    assert error(renderer, template) == (f"cannot render \"{'x' * 200}...\": 'nope' is undefined")


# -- render_value and evaluate_bool ------------------------------------------------------


def test_render_value_renders_strings_nested_in_lists_and_maps(renderer: Renderer) -> None:
    value = {
        "{{ inputs.name }}": ["{{ inputs.count }}", {"k": "{{ inputs.flag }}"}, 7, None],
        "n": 1.5,
        "t": ("{{ 1 + 1 }}",),
    }
    assert renderer.render_value(value, VARS) == {
        "Ada": ["3", {"k": "true"}, 7, None],
        "n": 1.5,
        "t": ("2",),
    }


def test_render_value_returns_other_values_unchanged(renderer: Renderer) -> None:
    marker = object()
    assert renderer.render_value(marker, VARS) is marker


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.flag }}", True),
        ("{{ 1 == 2 }}", False),
        (" TRUE\n", True),
        ("yes", True),
        ("1", True),
        ("False", False),
        ("0", False),
        ("", False),
        ("{{ inputs.nothing }}", False),
        ("null", False),
        ("None", False),
        (True, True),
        (False, False),
    ],
)
def test_evaluate_bool_reads_the_rendered_condition(
    renderer: Renderer, template: str | bool, expected: bool
) -> None:
    assert renderer.evaluate_bool(template, VARS) is expected


def test_evaluate_bool_refuses_text_that_is_not_a_boolean(renderer: Renderer) -> None:
    with pytest.raises(TemplateError) as raised:
        renderer.evaluate_bool("{{ inputs.name }}", VARS)
    assert str(raised.value) == (
        'cannot use "{{ inputs.name }}" as a condition: it gave "Ada", expected true or false'
    )
