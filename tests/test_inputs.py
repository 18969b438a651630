"""Flow inputs: declarations, coercion of raw values, and the messages people read."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from daemon.sdk.errors import InputError
from daemon.sdk.inputs import InputSpec, coerce_inputs, undeclared_inputs, validate_input_specs


def spec(**props: Any) -> InputSpec:
    return InputSpec.model_validate(props)


def one(value: Any, **props: Any) -> Any:
    """Coerce a single value for a single input named `x`."""
    return coerce_inputs([spec(id="x", **props)], {"x": value})["x"]


def refused(specs: list[InputSpec], raw: dict[str, Any], **kwargs: Any) -> list[str]:
    with pytest.raises(InputError) as caught:
        coerce_inputs(specs, raw, **kwargs)
    return caught.value.messages


def refused_one(value: Any, **props: Any) -> str:
    messages = refused([spec(id="x", **props)], {"x": value})
    assert len(messages) == 1, messages
    return messages[0]


def spec_errors(**props: Any) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        InputSpec.model_validate(props)
    return [(tuple(e["loc"]), e["msg"]) for e in caught.value.errors()]


# -- STRING / SECRET ---------------------------------------------------------------------


def test_string_keeps_text_and_turns_scalars_into_text() -> None:
    assert one("hello", type="STRING") == "hello"
    assert one(42, type="STRING") == "42"
    assert one(True, type="STRING") == "true"
    assert one("", type="STRING") == ""


def test_string_refuses_a_mapping() -> None:
    assert refused_one({"a": 1}, type="STRING") == "input 'x': {'a': 1} is not a STRING"


def test_string_validator_must_match_the_whole_value() -> None:
    assert one("student42", type="STRING", validator=r"^student(\d+)?$") == "student42"
    assert refused_one("student42abc", type="STRING", validator=r"student(\d+)?") == (
        "input 'x': 'student42abc' does not match the validator 'student(\\\\d+)?'"
    )


def test_secret_value_never_appears_in_a_message() -> None:
    assert one("s3cret", type="SECRET") == "s3cret"
    message = refused_one("Hunter2", type="SECRET", validator="[a-z]+")
    assert message == "input 'x': '******' does not match the validator '[a-z]+'"
    assert "Hunter2" not in message


def test_secret_items_of_an_array_are_masked_too() -> None:
    assert refused_one("tok1,tok2", type="ARRAY", itemType="SECRET") == (
        "input 'x': '******' is not an ARRAY (expected a list or a JSON array)"
    )
    assert one(["tok1"], type="ARRAY", itemType="SECRET") == ["tok1"]


# -- numbers -----------------------------------------------------------------------------


def test_int_accepts_ints_integer_text_and_integral_floats() -> None:
    assert one("2024", type="INT") == 2024
    assert one(" -3 ", type="INT") == -3
    assert one(7, type="INT") == 7
    assert one(4.0, type="INT") == 4


@pytest.mark.parametrize("value", ["abc", "4.5", "1_000", True, 4.5, [1]])
def test_int_refuses_what_is_not_an_integer(value: Any) -> None:
    assert refused_one(value, type="INT") == f"input 'x': {value!r} is not an INT"


def test_int_min_and_max_are_inclusive() -> None:
    assert one(18, type="INT", min=18, max=64) == 18
    assert one("64", type="INT", min=18, max=64) == 64
    assert refused_one(17, type="INT", min=18, max=64) == "input 'x': 17 is less than 18 (min)"
    assert refused_one("65", type="INT", min=18, max=64) == (
        "input 'x': '65' is greater than 64 (max)"
    )


def test_float_accepts_numbers_and_numeric_text() -> None:
    assert one("1.255", type="FLOAT") == 1.255
    assert one(2, type="FLOAT") == 2.0
    assert isinstance(one(2, type="FLOAT"), float)
    assert one("1e3", type="FLOAT") == 1000.0


@pytest.mark.parametrize("value", ["abc", "nan", "inf", "", False])
def test_float_refuses_non_numbers(value: Any) -> None:
    if value == "":
        assert refused_one(value, type="FLOAT") == "input 'x' is required"
    else:
        assert refused_one(value, type="FLOAT") == f"input 'x': {value!r} is not a FLOAT"


def test_float_bounds() -> None:
    assert refused_one(0.1, type="FLOAT", min=0.2, max=5.3) == (
        "input 'x': 0.1 is less than 0.2 (min)"
    )
    assert refused_one("6", type="FLOAT", min=0.2, max=5.3) == (
        "input 'x': '6' is greater than 5.3 (max)"
    )


# -- BOOLEAN / BOOL ----------------------------------------------------------------------


def test_boolean_reads_true_and_false_in_any_case() -> None:
    assert one("TRUE", type="BOOLEAN") is True
    assert one("false", type="BOOL") is False
    assert one(True, type="BOOLEAN") is True


def test_boolean_refuses_other_words_naming_the_declared_type() -> None:
    assert refused_one("yes", type="BOOLEAN") == (
        "input 'x': 'yes' is not a BOOLEAN (expected true or false)"
    )
    assert refused_one(1, type="BOOL") == "input 'x': 1 is not a BOOL (expected true or false)"


# -- dates and times ---------------------------------------------------------------------


def test_datetime_is_normalised_to_utc_with_z() -> None:
    assert one("2013-08-09T14:19:00Z", type="DATETIME") == "2013-08-09T14:19:00Z"
    assert one("2013-08-09T16:19:00+02:00", type="DATETIME") == "2013-08-09T14:19:00Z"
    assert one("2042-04-02T04:20:42.000Z", type="DATETIME") == "2042-04-02T04:20:42Z"
    assert one("2042-04-02T04:20:42.5Z", type="DATETIME") == "2042-04-02T04:20:42.500000Z"


def test_datetime_without_offset_is_taken_as_utc() -> None:
    assert one("2024-01-02T03:04:05", type="DATETIME") == "2024-01-02T03:04:05Z"


@pytest.mark.parametrize("value", ["2024-01-02", "yesterday", "2024-13-01T00:00:00Z", 1700000000])
def test_datetime_refuses_what_is_not_a_full_iso_datetime(value: Any) -> None:
    assert refused_one(value, type="DATETIME") == (
        f"input 'x': {value!r} is not a DATETIME (expected ISO-8601, e.g. 2042-04-02T04:20:42Z)"
    )


def test_datetime_after_and_before_bound_the_value() -> None:
    props = {"type": "DATETIME", "after": "2024-04-10T14:19:00Z", "before": "2024-04-15T14:19:00Z"}
    assert one("2024-04-10T16:19:00+02:00", **props) == "2024-04-10T14:19:00Z"
    assert refused_one("2024-04-01T00:00:00Z", **props) == (
        "input 'x': '2024-04-01T00:00:00Z' is earlier than 2024-04-10T14:19:00Z (after)"
    )
    assert refused_one("2024-05-01T00:00:00Z", **props) == (
        "input 'x': '2024-05-01T00:00:00Z' is later than 2024-04-15T14:19:00Z (before)"
    )


def test_date() -> None:
    assert one("2042-12-03", type="DATE") == "2042-12-03"
    assert refused_one("2042-02-30", type="DATE") == (
        "input 'x': '2042-02-30' is not a DATE (expected e.g. 2042-12-03)"
    )
    assert refused_one("2024-04-16", type="DATE", after="2024-04-10", before="2024-04-15") == (
        "input 'x': '2024-04-16' is later than 2024-04-15 (before)"
    )


def test_time() -> None:
    assert one("10:15:30", type="TIME") == "10:15:30"
    assert one("10:15", type="TIME") == "10:15:00"
    assert refused_one("10:15:30+01:00", type="TIME") == (
        "input 'x': '10:15:30+01:00' is not a TIME (expected e.g. 10:15:30, without a time zone)"
    )
    assert refused_one("11:00:00", type="TIME", after="11:01:01", before="11:04:01") == (
        "input 'x': '11:00:00' is earlier than 11:01:01 (after)"
    )


def test_time_written_unquoted_in_yaml_still_reads_as_a_time() -> None:
    # YAML 1.1 reads `defaults: 14:19:00` as the base-60 integer 51540.
    assert one(51540, type="TIME") == "14:19:00"


def test_duration_is_written_in_canonical_iso_form() -> None:
    assert one("PT90S", type="DURATION") == "PT1M30S"
    assert one("pt15s", type="DURATION") == "PT15S"
    assert refused_one("5 minutes", type="DURATION") == (
        "input 'x': '5 minutes' is not a DURATION (expected ISO-8601, e.g. PT5M6S)"
    )


def test_duration_min_and_max() -> None:
    props = {"type": "DURATION", "min": "PT5M6S", "max": "PT12H58M46S"}
    assert one("PT1H", **props) == "PT1H"
    assert refused_one("PT5M", **props) == "input 'x': 'PT5M' is less than PT5M6S (min)"
    assert refused_one("PT13H", **props) == "input 'x': 'PT13H' is greater than PT12H58M46S (max)"


# -- SELECT / MULTISELECT ----------------------------------------------------------------


def test_select_accepts_one_of_its_values() -> None:
    assert one("green", type="SELECT", values=["yellow", "green"]) == "green"


def test_select_refuses_a_value_outside_its_values() -> None:
    messages = refused(
        [spec(id="taxi", type="SELECT", values=["yellow", "green"])], {"taxi": "blue"}
    )
    assert messages == ["input 'taxi': 'blue' is not one of yellow, green"]


def test_select_with_allow_custom_value_accepts_anything() -> None:
    assert one("Oracle", type="SELECT", values=["AWS", "GCP"], allowCustomValue=True) == "Oracle"


def test_select_values_may_carry_labels() -> None:
    props = {"type": "SELECT", "values": ["dev", {"label": "Production", "value": "123"}]}
    assert one("123", **props) == "123"
    assert refused_one("Production", **props) == "input 'x': 'Production' is not one of dev, 123"


def test_select_values_that_yaml_read_as_booleans_or_numbers_compare_as_text() -> None:
    assert spec(id="x", type="SELECT", values=[True, 2024]).choices == ["true", "2024"]
    assert one(2024, type="SELECT", values=[2024]) == "2024"


def test_select_with_only_an_expression_leaves_the_check_to_the_renderer() -> None:
    assert one("anything", type="SELECT", expression="{{ kv('CHOICES') }}") == "anything"


def test_multiselect_reads_lists_json_arrays_and_comma_separated_text() -> None:
    props = {"type": "MULTISELECT", "values": ["a", "b", "c"]}
    assert one(["a", "c"], **props) == ["a", "c"]
    assert one('["b"]', **props) == ["b"]
    assert one("a, b ,c", **props) == ["a", "b", "c"]


def test_multiselect_reports_every_value_outside_its_values() -> None:
    messages = refused(
        [spec(id="taxis", type="MULTISELECT", values=["yellow", "green"])],
        {"taxis": "blue,green,red"},
    )
    assert messages == [
        "input 'taxis[0]': 'blue' is not one of yellow, green",
        "input 'taxis[2]': 'red' is not one of yellow, green",
    ]


def test_multiselect_refuses_a_mapping() -> None:
    assert refused_one({"a": 1}, type="MULTISELECT", values=["a"]) == (
        "input 'x': {'a': 1} is not a MULTISELECT (expected a list or a JSON array)"
    )


# -- ARRAY -------------------------------------------------------------------------------


def test_array_coerces_every_item_to_its_item_type() -> None:
    assert one(["1", 2], type="ARRAY", itemType="INT") == [1, 2]
    assert one("[1, 2, 3]", type="ARRAY", itemType="FLOAT") == [1.0, 2.0, 3.0]
    assert one(["PT60S"], type="ARRAY", itemType="DURATION") == ["PT1M"]


def test_array_text_is_read_as_json_first_then_as_yaml() -> None:
    props = {"type": "ARRAY", "itemType": "STRING"}
    assert one('["10:00:00", "yes", "01"]', **props) == ["10:00:00", "yes", "01"]
    assert one("[2024-01-02, yes]", **props) == ["2024-01-02", "true"]
    assert one("- a\n- b\n", **props) == ["a", "b"]


def test_array_reports_each_bad_item_by_index() -> None:
    messages = refused(
        [spec(id="years", type="ARRAY", itemType="INT")], {"years": '[2024, "abc", 3.5]'}
    )
    assert messages == [
        "input 'years[1]': 'abc' is not an INT",
        "input 'years[2]': 3.5 is not an INT",
    ]


def test_array_refuses_text_that_is_not_a_list() -> None:
    assert refused_one("1,2,3", type="ARRAY", itemType="INT") == (
        "input 'x': '1,2,3' is not an ARRAY (expected a list or a JSON array)"
    )


# -- JSON / YAML -------------------------------------------------------------------------


def test_json_parses_text_and_keeps_parsed_values() -> None:
    assert one('[{"name": "kestra"}]', type="JSON") == [{"name": "kestra"}]
    assert one({"a": [1]}, type="JSON") == {"a": [1]}


def test_json_refuses_malformed_text_saying_where() -> None:
    assert refused_one("{bad", type="JSON") == (
        "input 'x': '{bad' is not valid JSON "
        "(Expecting property name enclosed in double quotes at line 1 column 2)"
    )


def test_yaml_parses_text_into_json_values() -> None:
    assert one("- user: john\n  since: 2024-01-02\n", type="YAML") == [
        {"user": "john", "since": "2024-01-02"}
    ]
    assert one([{"user": "will"}], type="YAML") == [{"user": "will"}]


def test_yaml_refuses_malformed_text() -> None:
    assert refused_one("a: [1", type="YAML").startswith("input 'x': 'a: [1' is not valid YAML (")


# -- URI / EMAIL -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["https://example.com/orders.csv", "kestra:///ns/flow/file.csv", "s3://bucket/key"]
)
def test_uri_accepts_absolute_uris(value: str) -> None:
    assert one(value, type="URI") == value


@pytest.mark.parametrize("value", ["example.com/orders.csv", "https://", "http://a b", 42])
def test_uri_refuses_what_has_no_scheme_or_host(value: Any) -> None:
    assert refused_one(value, type="URI") == (
        f"input 'x': {value!r} is not a URI (expected e.g. https://example.com/data.csv)"
    )


def test_email() -> None:
    assert one("john@example.com", type="EMAIL") == "john@example.com"
    assert refused_one("john.example.com", type="EMAIL") == (
        "input 'x': 'john.example.com' is not an email address"
    )


# -- FILE --------------------------------------------------------------------------------


def test_file_is_stored_and_becomes_its_storage_uri() -> None:
    calls: list[tuple[str, Any]] = []

    def store(input_id: str, value: Any) -> str:
        calls.append((input_id, value))
        return f"kestra:///ns/flow/executions/1/inputs/{input_id}/data.csv"

    values = coerce_inputs(
        [spec(id="data", type="FILE")], {"data": "/tmp/data.csv"}, store_file=store
    )
    assert values == {"data": "kestra:///ns/flow/executions/1/inputs/data/data.csv"}
    assert calls == [("data", "/tmp/data.csv")]


def test_file_already_in_storage_is_kept_without_a_store() -> None:
    assert one("kestra:///ns/flow/f.csv", type="FILE") == "kestra:///ns/flow/f.csv"


def test_file_without_a_store_needs_a_storage_uri() -> None:
    assert refused_one("/tmp/data.csv", type="FILE") == (
        "input 'x': FILE input needs a file (an upload or a kestra:// URI), not '/tmp/data.csv'"
    )


def test_file_that_cannot_be_stored_is_reported() -> None:
    def store(input_id: str, value: Any) -> str:
        raise ValueError(f"no such file {value!r}")

    assert refused([spec(id="f", type="FILE")], {"f": "/nope.csv"}, store_file=store) == [
        "input 'f': cannot store '/nope.csv': no such file '/nope.csv'"
    ]


def test_file_with_an_extension_not_allowed_is_refused_before_storing() -> None:
    def store(input_id: str, value: Any) -> str:
        raise AssertionError("must not be stored")

    specs = [spec(id="f", type="FILE", allowedFileExtensions=[".csv", ".TXT"])]
    assert refused(specs, {"f": "/tmp/run.exe"}, store_file=store) == [
        "input 'f': '/tmp/run.exe' has none of the extensions .csv, .txt (allowedFileExtensions)"
    ]


def test_no_file_is_stored_when_another_input_is_refused() -> None:
    stored: list[str] = []

    def store(input_id: str, value: Any) -> str:
        stored.append(input_id)
        return "kestra:///x"

    specs = [spec(id="f", type="FILE"), spec(id="n", type="INT")]
    assert refused(specs, {"f": "/tmp/a.csv", "n": "x"}, store_file=store) == [
        "input 'n': 'x' is not an INT"
    ]
    assert stored == []


# -- required, defaults, unknown inputs --------------------------------------------------


def test_required_input_without_value_or_default_is_refused() -> None:
    assert refused([spec(id="name", type="STRING")], {}) == ["input 'name' is required"]


def test_missing_optional_input_is_none() -> None:
    assert coerce_inputs([spec(id="opt", type="STRING", required=False)], {}) == {"opt": None}


def test_defaults_are_applied_and_coerced() -> None:
    specs = [
        spec(id="n", type="INT", defaults="5"),
        spec(id="d", type="DURATION", defaults="PT300S"),
        spec(id="l", type="ARRAY", itemType="INT", defaults=[1, 2, 3]),
        spec(id="s", type="SELECT", values=["A", "B"], defaults="B"),
    ]
    assert coerce_inputs(specs, {}) == {"n": 5, "d": "PT5M", "l": [1, 2, 3], "s": "B"}


def test_a_given_value_wins_over_the_default() -> None:
    assert coerce_inputs([spec(id="n", type="INT", defaults=1)], {"n": "2"}) == {"n": 2}


def test_empty_text_counts_as_not_given_except_for_strings() -> None:
    specs = [spec(id="n", type="INT", defaults=3), spec(id="s", type="STRING", defaults="d")]
    assert coerce_inputs(specs, {"n": "", "s": ""}) == {"n": 3, "s": ""}


def test_prefill_is_only_a_suggestion_for_the_ui() -> None:
    assert refused([spec(id="n", type="INT", prefill=3)], {}) == ["input 'n' is required"]


def test_auto_select_first_makes_the_first_value_the_default() -> None:
    specs = [
        spec(id="s", type="SELECT", values=["a", "b"], autoSelectFirst=True),
        spec(id="m", type="MULTISELECT", values=["c", "d"], autoSelectFirst=True),
    ]
    assert coerce_inputs(specs, {}) == {"s": "a", "m": ["c"]}


def test_conditional_input_is_not_required_here() -> None:
    specs = [
        spec(id="kind", type="SELECT", values=["vm", "db"]),
        spec(
            id="size",
            type="STRING",
            dependsOn={"inputs": ["kind"], "condition": "{{ inputs.kind == 'vm' }}"},
        ),
    ]
    assert coerce_inputs(specs, {"kind": "db"}) == {"kind": "db", "size": None}


def test_an_undeclared_input_is_left_out_not_refused() -> None:
    """Kestra FlowInputOutput.readExecutionInputs: a value for no declared input is dropped
    with a warning ("Input c was provided for workflow ... but isn't declared"); the
    examples' schedules pass `inputs: {name: user, value: ...}` to a flow declaring `user`."""
    specs = [spec(id="a", type="STRING"), spec(id="b", type="INT", required=False)]
    assert coerce_inputs(specs, {"a": "x", "c": 1}) == {"a": "x", "b": None}
    assert undeclared_inputs(specs, {"a": "x", "c": 1}) == ["c"]
    assert coerce_inputs([], {"c": 1}) == {}
    assert undeclared_inputs([], {"c": 1}) == ["c"]


def test_every_problem_is_reported_at_once() -> None:
    specs = [
        spec(id="year", type="INT"),
        spec(id="taxi", type="SELECT", values=["yellow", "green"]),
        spec(id="name", type="STRING"),
        spec(id="ok", type="BOOLEAN", defaults=True),
    ]
    with pytest.raises(InputError) as caught:
        coerce_inputs(specs, {"year": "abc", "taxi": "blue", "colour": "red"})
    assert caught.value.messages == [
        "input 'year': 'abc' is not an INT",
        "input 'taxi': 'blue' is not one of yellow, green",
        "input 'name' is required",
    ]
    assert str(caught.value).startswith("input 'year': 'abc' is not an INT; input 'taxi'")


def test_values_are_json_serialisable() -> None:
    specs = [
        spec(id="dt", type="DATETIME"),
        spec(id="d", type="DATE"),
        spec(id="t", type="TIME"),
        spec(id="du", type="DURATION"),
        spec(id="y", type="YAML"),
    ]
    values = coerce_inputs(
        specs,
        {
            "dt": "2024-01-01T00:00:00Z",
            "d": "2024-01-01",
            "t": "10:00:00",
            "du": "PT1S",
            "y": "when: 2024-01-01",
        },
    )
    assert json.loads(json.dumps(values)) == values


# -- declarations ------------------------------------------------------------------------


def test_ids_follow_kestras_rule_and_may_nest_with_dots() -> None:
    assert spec(id="nested.string", type="STRING").id == "nested.string"
    assert spec(id="my-file_2", type="FILE").id == "my-file_2"
    assert spec_errors(id="_x", type="STRING")[0][0] == ("id",)


def test_a_typo_in_a_property_is_an_error() -> None:
    assert spec_errors(id="x", type="STRING", valdator="a") == [
        (("valdator",), "Extra inputs are not permitted")
    ]


def test_a_property_of_another_type_is_an_error_at_that_property() -> None:
    assert spec_errors(id="x", type="INT", values=["a"]) == [
        (("values",), "'values' does not apply to INT inputs (only to SELECT, MULTISELECT, ENUM)")
    ]
    assert spec_errors(id="x", type="STRING", allowCustomValue=True)[0][0] == ("allowCustomValue",)


def test_declarations_missing_what_their_type_needs() -> None:
    assert spec_errors(id="x", type="SELECT") == [
        ((), "a SELECT input needs 'values' or 'expression'")
    ]
    assert spec_errors(id="x", type="ARRAY") == [((), "an ARRAY input needs 'itemType'")]
    assert spec_errors(id="x", type="ARRAY", itemType="ARRAY") == [
        (
            ("itemType",),
            "itemType cannot be ARRAY, MULTISELECT, SELECT, ENUM, FILE, OBJECT, TABLE",
        )
    ]


def test_bad_validator_and_bounds_are_errors_at_load() -> None:
    assert spec_errors(id="x", type="STRING", validator="(")[0][0] == ("validator",)
    assert spec_errors(id="x", type="INT", min="abc") == [(("min",), "'abc' is not an INT")]
    assert spec_errors(id="x", type="DATE", after="soon") == [
        (("after",), "'soon' is not a DATE (expected e.g. 2042-12-03)")
    ]


def test_prefill_and_defaults_cannot_both_be_set() -> None:
    assert spec_errors(id="x", type="INT", defaults=1, prefill=2) == [
        ((), "'prefill' and 'defaults' cannot both be set")
    ]


def test_validate_input_specs_accepts_good_declarations() -> None:
    specs = [
        spec(id="year", type="INT", defaults=2024, min=2000),
        spec(id="taxi", type="SELECT", values=["yellow", "green"], defaults="green"),
        spec(id="file", type="FILE", defaults="nsfile:///hello.txt"),
        spec(id="size", type="STRING", dependsOn={"inputs": ["taxi"]}),
    ]
    assert validate_input_specs(specs) == []


def test_validate_input_specs_points_at_each_bad_default_and_duplicate_id() -> None:
    specs = [
        spec(id="a", type="STRING"),
        spec(id="taxi", type="SELECT", values=["yellow", "green"], defaults="blue"),
        spec(id="year", type="INT", defaults="abc"),
        spec(id="a", type="ARRAY", itemType="INT", defaults=[1, "z"]),
        spec(id="age", type="INT", min=18, prefill=10),
        spec(id="f", type="FILE", defaults="/tmp/x.csv"),
        spec(id="b", type="STRING", dependsOn={"inputs": ["a", "nope"]}),
    ]
    assert validate_input_specs(specs) == [
        ((1, "defaults"), "'blue' is not one of yellow, green"),
        ((2, "defaults"), "'abc' is not an INT"),
        ((3, "id"), "duplicate input id 'a' (already declared by inputs[0])"),
        ((3, "defaults", 1), "'z' is not an INT"),
        ((4, "prefill"), "10 is less than 18 (min)"),
        (
            (5, "defaults"),
            "'/tmp/x.csv' is not a file URI (expected kestra:///..., nsfile:///... or file:///...)",
        ),
        (
            (6, "dependsOn", "inputs", 1),
            "dependsOn names 'nope', which is not another input "
            "of this flow (a, taxi, year, age, f, b)",
        ),
    ]
