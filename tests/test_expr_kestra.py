"""Kestra's expression functions, filters and operators that Jinja lacks or reads otherwise.

Each test names the Kestra (or Pebble) test or documentation page the behaviour comes from.
The functions that need the daemon (files, logs, secrets, kv) are in test_expr_services.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from daemon.expr.renderer import Renderer
from daemon.sdk.errors import TemplateError


@pytest.fixture(scope="module")
def r() -> Renderer:
    return Renderer()


def render(r: Renderer, template: str, **variables: Any) -> str:
    return r.render(template, variables)


def error(r: Renderer, template: str, **variables: Any) -> str:
    with pytest.raises(TemplateError) as raised:
        r.render(template, variables)
    return str(raised.value)


# -- operators ----------------------------------------------------------------------------


def test_contains_reads_lists_maps_and_text_as_pebble_does(r: Renderer) -> None:
    """Pebble ContainsExpression (docs expressions "Operators" > contains): a list holds an
    item or every item of a list, a map holds a key, a text holds a piece of text, null holds
    nothing, anything else is an error."""
    assert render(r, "{{ [1, 2, 3] contains 2 }} {{ [1, 2, 3] contains [1, 3] }}") == "true true"
    assert render(r, "{{ [1, 2] contains [2, 5] }} {{ ['a'] contains 'b' }}") == "false false"
    assert render(r, "{{ {'k': 'v'} contains 'k' }} {{ {'k': 'v'} contains 'v' }}") == "true false"
    assert render(r, "{{ 'hello' contains 'ell' }} {{ x contains 'a' }}", x=None) == "true false"
    assert render(r, "{{ [true] contains 1 }}") == "false"  # a boolean is no number
    assert "Contains operator can only be used on Collections" in error(r, "{{ 5 contains 1 }}")


def test_contains_binds_looser_than_comparisons_and_tighter_than_and(r: Renderer) -> None:
    """Pebble's operator table (CoreExtension): `contains` has precedence 20, `and` 15, `==`
    30, so `a contains b and c == d` is `(a contains b) and (c == d)`."""
    template = "{{ tags contains 'x' and n == 1 }} {{ not tags contains 'y' }}"
    assert render(r, template, tags=["x"], n=1) == "true true"
    assert render(r, "{{ tags contains 'a' ~ 'b' ? 'yes' : 'no' }}", tags=["ab"]) == "yes"
    assert render(r, "{% if tags contains 'x' %}in{% endif %}", tags=["x"]) == "in"


def test_equals_is_an_alias_of_double_equals(r: Renderer) -> None:
    """Pebble CoreExtension registers `equals` with EqualsExpression, as `==`."""
    assert render(r, "{{ 1 equals 1 }} {{ 'a' equals 'b' }} {{ x equals 2 }}", x=2) == (
        "true false true"
    )
    assert render(r, "{{ equals }}", equals="a variable still") == "a variable still"


def test_in_compares_as_text_and_looks_at_map_keys_and_values(r: Renderer) -> None:
    """Kestra InExpressionTest / NotInExpressionTest: items are compared by their text
    (`1 in ['1']`), a map holds its keys and its values, a text or null holds nothing."""
    assert render(r, "{{ 1 in ['1'] }} {{ '2' in [1, 2] }} {{ 3 in [1] }}") == "true true false"
    assert render(r, "{{ 'k' in m }} {{ 'v' in m }} {{ 'z' in m }}", m={"k": "v"}) == (
        "true true false"
    )
    assert render(r, "{{ 'a' in 'abc' }} {{ null in [null] }} {{ 'a' in null }}") == (
        "false false false"
    )
    assert render(r, "{{ 'x' not in ['y'] }} {{ 1 not in ['1'] }}") == "true false"


def test_two_dots_make_an_inclusive_range(r: Renderer) -> None:
    """Pebble RangeExpression (`..`, docs expressions "Operators"): both ends included."""
    assert render(r, "{{ 1..3 }}") == "[1,2,3]"
    assert render(r, "{% for i in 0..n %}{{ i }}{% endfor %}", n=2) == "012"


def test_texts_compare_in_lexicographic_order(r: Renderer) -> None:
    """Kestra GreaterThanExpressionTest / LessThanExpressionTest: two texts compare with
    String.compareTo; numbers compare as numbers."""
    assert render(r, "{{ '10' < '9' }} {{ 10 < 9 }} {{ 'b' >= 'a' }}") == "true false true"


def test_map_is_a_test(r: Renderer) -> None:
    """Pebble MapTest (`is map`)."""
    assert render(r, "{{ m is map }} {{ l is map }}", m={}, l=[]) == "true false"


# -- filters ------------------------------------------------------------------------------


def test_jq_reads_a_text_as_json(r: Renderer) -> None:
    """Kestra JqFilterTest.fromString: a String input is parsed as JSON; results are always a
    list; null gives null; a text that is not JSON is an error."""
    assert render(r, "{{ '{\"a\": {\"b\": 1}}' | jq('.a.b') }}") == "[1]"
    assert render(r, "{{ text | jq('.[]') | first }}", text="[4, 5]") == "4"
    assert render(r, "{{ x | jq('.a') }}", x=None) == ""
    assert "unable to parse jq value 'hello'" in error(r, "{{ 'hello' | jq('.a') }}")
    assert "expects an argument 'expression'" in error(r, "{{ {} | jq }}")


def test_indent_leaves_the_first_line_and_nindent_starts_with_a_newline(r: Renderer) -> None:
    """Kestra IndentFilterTest / NindentFilterTest (AbstractIndent): `amount` times `prefix`
    (a space by default) before every line after the first; `nindent` adds a newline first."""
    assert render(r, "{{ 'a\nb' | indent(2) }}") == "a\n  b"
    assert render(r, "{{ v | indent(1, '-') }}", v="a\r\nb") == "a\r\n-b"
    assert render(r, "{{ 'a\nb' | nindent(2) }}") == "\n  a\n  b"
    assert render(r, "{{ '' | indent(2) }}") == ""
    assert "'amount'" in error(r, "{{ 'a' | indent }}")


def test_list_filters_flatten_merge_slice_and_uniq(r: Renderer) -> None:
    """Kestra FlattenFilterTest, UniqFilterTest; Pebble MergeFilter and SliceFilter (the
    `toIndex` is excluded, `fromIndex` defaults to 0)."""
    assert render(r, "{{ [[1, 2], 3, [4]] | flatten }}") == "[1,2,3,4]"
    assert render(r, "{{ [1] | merge([2]) }} {{ {'a': 1} | merge({'b': 2}) }}") == (
        '[1,2] {"a":1,"b":2}'
    )
    assert render(r, "{{ 'hello' | slice(1, 3) }} {{ [1, 2, 3] | slice(1) }}") == "el [2,3]"
    assert "toIndex must be smaller" in error(r, "{{ 'ab' | slice(0, 5) }}")
    assert render(r, "{{ [1, 1, 2, 1] | uniq }}") == "[1,2]"
    assert "can only be applied to lists" in error(r, "{{ 'x' | flatten }}")


def test_escape_filters_for_quotes_and_shells(r: Renderer) -> None:
    """Kestra EscapeCharFilterTest (single, double, shell) and ShFilterTest."""
    assert render(r, "{{ v | escapeChar('single') }}", v="it's") == "it\\'s"
    assert render(r, "{{ v | escapeChar('double') }}", v='say "hi"') == 'say \\"hi\\"'
    assert render(r, "{{ v | escapeChar('shell') }} {{ v | sh }}", v="it's") == (
        "it'\\''s it'\\''s"
    )
    assert "'single', 'double' or 'shell'" in error(r, "{{ 'x' | escapeChar('xml') }}")


def test_regex_filters_match_extract_and_replace(r: Renderer) -> None:
    """Kestra RegexFilterTest (regexMatch finds anywhere, regexExtract returns the first match
    or a group, null when nothing matches; regexReplace takes Java's `$1`)."""
    assert render(r, "{{ 'order-123' | regexMatch('\\\\d+') }}") == "true"
    assert render(r, "{{ 'order-123' | regexExtract('(\\\\w+)-(\\\\d+)', 2) }}") == "123"
    assert render(r, "{{ 'abc' | regexExtract('\\\\d') is null }}") == "true"
    assert render(r, "{{ 'a-b' | regexReplace('(\\\\w)-(\\\\w)', '$2-$1') }}") == "b-a"
    assert "invalid regular expression" in error(r, "{{ 'a' | regexMatch('(') }}")


def test_yaml_filter_writes_and_yaml_function_reads(r: Renderer) -> None:
    """Kestra YamlFilterTest / YamlFunctionTest: lists indented under their key, no document
    marker; `yaml()` parses a YAML text."""
    assert render(r, "{{ {'a': [1, {'b': 'x'}]} | yaml }}") == "a:\n  - 1\n  - b: x\n"
    assert render(r, "{{ yaml('a:\n  b: [1, 2]').a.b[1] }}") == "2"
    assert render(r, "{{ null | yaml }}") == "null"


def test_number_and_type_filters(r: Renderer) -> None:
    """Kestra ClassNameFilterTest; Pebble AbsFilter, NumberFormatFilter, Nl2brFilter."""
    assert render(r, "{{ 'a' | className }} {{ 1 | className }} {{ [] | className }}") == (
        "java.lang.String java.lang.Integer java.util.ArrayList"
    )
    assert render(r, "{{ -3 | abs }} {{ 1234567.891 | numberFormat('#,##0.00') }}") == (
        "3 1,234,567.89"
    )
    assert render(r, "{{ 0.5 | numberformat('#%') }} {{ 3.14159 | numberFormat('0.###') }}") == (
        "50% 3.142"
    )
    assert render(r, "{{ 'a\nb' | nl2br }}") == "a<br />b"


# -- functions ----------------------------------------------------------------------------


def test_id_functions_give_kestra_shaped_ids(r: Renderer) -> None:
    """Kestra UUIDFunctionTest, IDFunctionTest, KSUIDFunctionTest, NanoIDFunctionTest: a
    time-ordered UUID, 22 base62 characters, 27 base62 characters, 21 URL-safe characters (or
    the length and alphabet given)."""
    ids = render(r, "{{ uuid() }}|{{ id() }}|{{ ksuid() }}|{{ nanoId() }}|{{ nanoId(5, 'ab') }}")
    uuid, short, ksuid, nano, custom = ids.split("|")
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", uuid
    )
    assert re.fullmatch(r"[0-9A-Za-z]{22}", short)
    assert re.fullmatch(r"[0-9A-Za-z]{27}", ksuid)
    assert re.fullmatch(r"[0-9A-Za-z_-]{21}", nano)
    assert re.fullmatch(r"[ab]{5}", custom)
    assert "lower than 1000" in error(r, "{{ nanoId(5000) }}")


def test_random_int_excludes_its_upper_bound(r: Renderer) -> None:
    """Kestra RandomIntFunctionTest: from `lower` included to `upper` excluded."""
    values = {int(render(r, "{{ randomInt(1, 3) }}")) for _ in range(200)}
    assert values == {1, 2}
    assert "upper is less than lower" in error(r, "{{ randomInt(5, 1) }}")
    assert int(render(r, "{{ randomPort() }}")) > 0


def test_max_and_min_functions(r: Renderer) -> None:
    """Pebble MaxFunction / MinFunction."""
    assert render(r, "{{ max(1, 7, 3) }} {{ min(4, 2) }}") == "7 2"


def test_tasks_with_state_lists_task_runs_in_a_state(r: Renderer) -> None:
    """Kestra TasksWithStateFunctionTest: case-insensitive state; runs inside ForEach carry
    their `value`."""
    tasks = {
        "a": {"state": "FAILED"},
        "b": {"state": "SUCCESS"},
        "each": {"v1": {"state": "FAILED"}, "v2": {"state": "SUCCESS"}},
    }
    assert json.loads(render(r, "{{ tasksWithState('failed') }}", tasks=tasks)) == [
        {"taskId": "a", "state": "FAILED"},
        {"taskId": "each", "state": "FAILED", "value": "v1"},
    ]
    assert render(r, "{{ tasksWithState(state='KILLED') is empty }}", tasks=tasks) == "true"
    assert "expects an argument 'state'" in error(r, "{{ tasksWithState() }}", tasks=tasks)


def test_current_each_output_follows_the_foreach_values(r: Renderer) -> None:
    """Kestra CurrentEachOutputFunction (docs "ForEach" / currentEachOutput): the outputs of
    the current iteration, through every enclosing ForEach value."""
    outputs = {"out": {"x": {"1": {"value": "x1"}, "2": {"value": "x2"}}}}
    parents = [{"taskrun": {"value": "x"}}, {"taskrun": {"value": None}}]
    variables = {"outputs": outputs, "parents": parents, "taskrun": {"value": "2"}}
    assert render(r, "{{ currentEachOutput(outputs.out).value }}", **variables) == "x2"
    missing = {**variables, "parents": [{"taskrun": {"value": "nope"}}]}
    assert "No execution outputs" in error(r, "{{ currentEachOutput(outputs.out) }}", **missing)
    assert "with type map" in error(r, "{{ currentEachOutput('x') }}", **variables)


def test_loop_outputs_picks_one_output_of_every_iteration(r: Renderer) -> None:
    """Kestra LoopOutputsFunctionTest: `loopOutputs(outputs.<loop>.outputs, name)` lists
    that declared output of each iteration (null where one lacks it); a missing or wrong
    argument is an error saying which."""
    iterations = [
        {"item": {"value": "a", "iteration": 0}, "outputs": {"uri": "s3://bucket/a"}},
        {"item": {"value": "b", "iteration": 1}, "outputs": {"other": 1}},
        {"item": {"value": "c", "iteration": 2}, "outputs": {"uri": "s3://bucket/c"}},
    ]
    outputs = {"myLoop": {"outputs": iterations}}
    assert render(r, "{{ loopOutputs(outputs.myLoop.outputs, 'uri') }}", outputs=outputs) == (
        '["s3://bucket/a",null,"s3://bucket/c"]'
    )
    assert "expects 'outputs' to be a list" in error(r, "{{ loopOutputs('x', 'uri') }}")
    assert "non-null argument 'outputs'" in error(r, "{{ loopOutputs() }}")
    assert "expects 'name' to be a string" in error(
        r, "{{ loopOutputs(outputs.myLoop.outputs, 3) }}", outputs=outputs
    )


def test_file_uri_names_a_namespace_file_of_the_flow(r: Renderer) -> None:
    """Kestra FileURIFunctionTest: `kestra:///<namespace as path>/_files/<path>`, the leading
    slash dropped, `../` refused."""
    flow = {"namespace": "company.team", "id": "f"}
    assert render(r, "{{ fileURI('/data/a.csv') }}", flow=flow) == (
        "kestra:///company/team/_files/data/a.csv"
    )
    assert "must not contain '../'" in error(r, "{{ fileURI('../x') }}", flow=flow)


def test_env_reads_the_envs_variable(r: Renderer) -> None:
    """Kestra EnvFunctionTest: a short name of `envs`, or the default when absent or empty."""
    envs = {"region": "eu", "empty": ""}
    assert render(
        r, "{{ env('region') }} {{ env('empty', 'd') }} {{ env('x', 'd') }}", envs=envs
    ) == ("eu d d")


def test_fetch_context_gives_every_variable(r: Renderer) -> None:
    """Kestra FetchContextFunction / printContext: the variables of the expression."""
    assert json.loads(render(r, "{{ fetchContext() | toJson }}", flow={"id": "f"}, a=1)) == {
        "flow": {"id": "f"},
        "a": 1,
    }


def test_from_ion_reads_ion_text_and_to_ion_writes_it(r: Renderer) -> None:
    """Kestra FromIonFunctionTest / ToIonFilterTest: `fromIon` reads the first row of Ion text
    (every row with `allRows`), as the files a JDBC STORE writes; `toIon` writes Ion."""
    rows = (
        "{id:1,name:\"a\",price:1.5e0,total:12.30,at:2024-01-02T03:04:05Z,tags:[x,'y z']}\n{id:2}"
    )
    assert render(r, "{{ fromIon(rows).name }} {{ fromIon(rows).total }}", rows=rows) == "a 12.3"
    assert render(r, "{{ fromIon(rows, allRows=true) | length }}", rows=rows) == "2"
    assert render(r, "{{ fromIon(rows).tags }} {{ fromIon(rows).at }}", rows=rows) == (
        '["x","y z"] 2024-01-02T03:04:05Z'
    )
    assert render(r, "{{ {'a': [1, 2.5, null, true]} | toIon }}") == '{"a":[1,2.5e0,null,true]}'
    assert "cannot read the Ion data" in error(r, "{{ fromIon('{a: #}') }}")


def test_pre_0_18_json_names_still_work(r: Renderer) -> None:
    """Kestra's Extension before 0.18 registered `jsonEncode` (filter) and `jsonDecode`
    (function), renamed `toJson` and `fromJson`; flows of that time still use them."""
    assert render(r, "{{ {'a': 1} | jsonEncode }} {{ jsonDecode('[1]')[0] }}") == '{"a":1} 1'
