"""OBJECT and TABLE inputs: records of typed fields, from every way a value arrives (API
multipart and JSON bodies, `podium run -i`, a Subflow), and the load-time rules of their
declarations."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from daemon.flows.loader import load_flow
from daemon.sdk.errors import InputError
from daemon.sdk.inputs import InputSpec, coerce_inputs, validate_input_specs
from tests.api_helpers import call, form, serving
from tests.harness import Harness, problems

ROOT = Path(__file__).resolve().parent.parent

DISKS: dict[str, Any] = {
    "id": "disks",
    "type": "TABLE",
    "columns": [
        {"id": "size_gb", "type": "INT", "min": 10, "max": 2048},
        {"id": "mountpoint", "type": "STRING"},
    ],
}
SERVER: dict[str, Any] = {
    "id": "server",
    "type": "OBJECT",
    "properties": [
        {"id": "name", "type": "STRING", "validator": "^[a-z]+$"},
        {"id": "cpus", "type": "INT", "min": 1},
        {"id": "tier", "type": "SELECT", "values": ["small", "large"], "required": False},
        {"id": "started", "type": "DATE", "required": False},
    ],
}


def spec(**props: Any) -> InputSpec:
    return InputSpec.model_validate(props)


def refused(declaration: dict[str, Any], value: Any) -> list[str]:
    with pytest.raises(InputError) as caught:
        coerce_inputs([spec(**declaration)], {declaration["id"]: value})
    return caught.value.messages


def spec_errors(**props: Any) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        InputSpec.model_validate(props)
    return [(tuple(e["loc"]), e["msg"]) for e in caught.value.errors()]


# -- OBJECT --------------------------------------------------------------------------------


def test_object_types_every_property_from_a_mapping_or_json_text() -> None:
    """Kestra ObjectInput: each property is a regular input resolved against one key of the
    submitted object (FlowInputOutput.parseObject accepts a map or JSON text)."""
    values = {"name": "web", "cpus": "4", "started": "2024-03-01"}
    assert coerce_inputs([spec(**SERVER)], {"server": values}) == {
        "server": {"name": "web", "cpus": 4, "tier": None, "started": "2024-03-01"}
    }
    text = json.dumps({"name": "db", "cpus": 2, "tier": "large"})
    assert coerce_inputs([spec(**SERVER)], {"server": text})["server"] == {
        "name": "db",
        "cpus": 2,
        "tier": "large",
        "started": None,
    }


def test_object_reads_yaml_text_as_the_cli_writes_it() -> None:
    """podium's ARRAY rule (JSON first, then YAML) for text: `-i server='name: web'`."""
    assert coerce_inputs([spec(**SERVER)], {"server": "name: web\ncpus: 1\n"})["server"] == {
        "name": "web",
        "cpus": 1,
        "tier": None,
        "started": None,
    }


def test_object_leaves_out_keys_no_property_declares() -> None:
    """Kestra FlowInputOutput.parseRecord builds the record from the declared fields only."""
    value = {"name": "web", "cpus": 1, "colour": "red"}
    assert "colour" not in coerce_inputs([spec(**SERVER)], {"server": value})["server"]


def test_object_reports_every_bad_property_with_its_key() -> None:
    """Kestra FlowInputOutput.parseRecord: every failing field is reported at once, the
    field id in front of its cause."""
    assert refused(SERVER, {"name": "Web 1", "cpus": 0, "tier": "huge"}) == [
        "input 'server.name': 'Web 1' does not match the validator '^[a-z]+$'",
        "input 'server.cpus': 0 is less than 1 (min)",
        "input 'server.tier': 'huge' is not one of small, large",
    ]
    assert refused(SERVER, {"name": "web"}) == ["input 'server.cpus': a value is required"]


@pytest.mark.parametrize("value", ["[1, 2]", "just text", 42, ["name", "web"], "{bad"])
def test_object_refuses_what_is_not_a_mapping(value: Any) -> None:
    """Kestra FlowInputOutput.asMap: "expected an object"."""
    messages = refused(SERVER, value)
    assert len(messages) == 1
    assert messages[0].startswith("input 'server': ")
    assert messages[0].endswith("is not an OBJECT (expected a mapping or a JSON object)")


def test_object_default_is_typed_like_a_given_value() -> None:
    """Kestra FlowInputOutput.resolveDefaultValue: an OBJECT's `defaults` is a map, parsed
    as a submitted value would be."""
    declared = spec(**SERVER, defaults={"name": "web", "cpus": "2"})
    assert coerce_inputs([declared], {})["server"]["cpus"] == 2


# -- TABLE ---------------------------------------------------------------------------------


def test_table_types_every_cell_against_its_column_when_the_value_is_json() -> None:
    """Kestra TableInputTest.shouldTypeEveryCellAgainstItsColumnWhenValueIsJson."""
    text = json.dumps(
        [{"size_gb": "10", "mountpoint": "/dev/sda"}, {"size_gb": 20, "mountpoint": "/dev/sdb"}]
    )
    assert coerce_inputs([spec(**DISKS)], {"disks": text}) == {
        "disks": [
            {"size_gb": 10, "mountpoint": "/dev/sda"},
            {"size_gb": 20, "mountpoint": "/dev/sdb"},
        ]
    }


def test_table_reports_every_offending_cell_with_its_path() -> None:
    """Kestra TableInputTest.shouldReportEveryOffendingCellWithItsPathWhenCellsAreInvalid
    (paths disks[1].size_gb and disks[2].size_gb)."""
    rows = [
        {"size_gb": 100, "mountpoint": "/dev/sda"},
        {"size_gb": 4096, "mountpoint": "/dev/sdb"},
        {"mountpoint": "/dev/sdc"},
    ]
    assert refused(DISKS, rows) == [
        "input 'disks[1].size_gb': 4096 is greater than 2048 (max)",
        "input 'disks[2].size_gb': a value is required",
    ]


def test_table_rejects_a_row_count_outside_its_bounds() -> None:
    """Kestra TableInputTest.shouldRejectRowCountOutsideBoundsWhenRowsAreDeclared and
    TableInput.validate (rows.min / rows.max)."""
    one_row = [{"size_gb": 10, "mountpoint": "/dev/sda"}]
    assert refused({**DISKS, "rows": {"min": 2}}, one_row) == [
        "input 'disks': has 1 row; it must have at least 2 rows"
    ]
    assert refused({**DISKS, "rows": {"max": 1}}, one_row * 3) == [
        "input 'disks': has 3 rows; it must have at most 1 row"
    ]
    assert coerce_inputs([spec(**DISKS, rows={"min": 0, "max": 1})], {"disks": []}) == {"disks": []}


def test_table_refuses_rows_that_are_not_objects_and_values_that_are_not_lists() -> None:
    """Kestra FlowInputOutput.parseTable: "expected a list of objects", "row N: expected an
    object"."""
    assert refused(DISKS, [{"size_gb": 10, "mountpoint": "/"}, "x"]) == [
        "input 'disks[1]': 'x' is not an object (a row of the table)"
    ]
    assert refused(DISKS, '{"size_gb": 10}') == [
        "input 'disks': '{\"size_gb\": 10}' is not a TABLE "
        "(expected a list of objects or a JSON array)"
    ]


def test_table_multiselect_column_keeps_a_list_per_cell() -> None:
    """Kestra RecordFieldsValidator allows MULTISELECT fields; each cell is a list."""
    declared = spec(
        id="t",
        type="TABLE",
        columns=[{"id": "tags", "type": "MULTISELECT", "values": ["a", "b"]}],
    )
    assert coerce_inputs([declared], {"t": [{"tags": ["a", "b"]}, {"tags": "b"}]}) == {
        "t": [{"tags": ["a", "b"]}, {"tags": ["b"]}]
    }
    with pytest.raises(InputError) as caught:
        coerce_inputs([declared], {"t": [{"tags": ["a", "c"]}]})
    assert caught.value.messages == ["input 't[0].tags[1]': 'c' is not one of a, b"]


# -- declarations ----------------------------------------------------------------------------


def test_object_and_table_need_their_fields() -> None:
    """Kestra RecordFieldsValidator: "`properties` must declare at least one field"."""
    assert spec_errors(id="x", type="OBJECT") == [
        ((), "an OBJECT input needs 'properties' (at least one)")
    ]
    assert spec_errors(id="x", type="TABLE", columns=[]) == [
        ((), "a TABLE input needs 'columns' (at least one)")
    ]


def test_fields_belong_to_their_own_type() -> None:
    """podium's rule for type-specific properties, as for `values` or `itemType`."""
    assert spec_errors(id="x", type="STRING", properties=[{"id": "a", "type": "INT"}]) == [
        (("properties",), "'properties' does not apply to STRING inputs (only to OBJECT)")
    ]
    assert spec_errors(id="x", type="OBJECT", properties=[{"id": "a", "type": "INT"}], rows={})[
        0
    ] == (("rows",), "'rows' does not apply to OBJECT inputs (only to TABLE)")


def test_rows_bounds_are_checked_at_load() -> None:
    """Kestra TableInput.Rows (@Min(0) min, @Min(1) max) and TableInputValidator
    ("`rows.min` cannot be greater than `rows.max`")."""
    columns = [{"id": "a", "type": "INT"}]
    assert spec_errors(id="x", type="TABLE", columns=columns, rows={"min": 3, "max": 2}) == [
        ((), "'rows.min' cannot be greater than 'rows.max'")
    ]
    assert spec_errors(id="x", type="TABLE", columns=columns, rows={"min": -1}) == [
        (("rows", "min"), "Input should be greater than or equal to 0")
    ]
    assert spec_errors(id="x", type="TABLE", columns=columns, rows={"max": 0}) == [
        (("rows", "max"), "Input should be greater than or equal to 1")
    ]
    assert spec_errors(id="x", type="TABLE", columns=columns, rows={"most": 2})[0][0] == (
        "rows",
        "most",
    )


def test_object_and_table_cannot_be_array_items() -> None:
    """Kestra ArrayInputValidator: "`itemType` cannot be OBJECT" (or TABLE)."""
    assert spec_errors(id="x", type="ARRAY", itemType="TABLE")[0][0] == ("itemType",)


def test_record_fields_follow_kestras_rules_each_at_its_place() -> None:
    """Kestra RecordFieldsValidator: unique ids without dots, scalar types only, and no
    dependsOn, defaults, prefill or expression on a field."""
    declared = spec(
        id="server",
        type="OBJECT",
        properties=[
            {"id": "n", "type": "INT", "defaults": 3},
            {"id": "n", "type": "JSON"},
            {"id": "a.b", "type": "SELECT", "expression": "{{ [1] }}"},
            {"id": "c", "type": "STRING", "dependsOn": {"inputs": ["n"]}, "prefill": "x"},
            {"id": "d", "type": "OBJECT", "properties": [{"id": "e", "type": "INT"}]},
        ],
    )
    assert validate_input_specs([declared]) == [
        ((0, "properties", 0, "defaults"), "a property cannot declare 'defaults'"),
        (
            (0, "properties", 1, "id"),
            "duplicate property id 'n' (already declared by properties[0])",
        ),
        (
            (0, "properties", 1, "type"),
            "a property cannot be of type JSON (only STRING, INT, FLOAT, BOOL, BOOLEAN, DATE, "
            "DATETIME, TIME, DURATION, EMAIL, URI, SELECT, ENUM, MULTISELECT)",
        ),
        ((0, "properties", 2, "id"), "a property id cannot contain a dot ('a.b')"),
        ((0, "properties", 2, "expression"), "a property cannot declare 'expression'"),
        ((0, "properties", 3, "dependsOn"), "a property cannot declare 'dependsOn'"),
        ((0, "properties", 3, "prefill"), "a property cannot declare 'prefill'"),
        (
            (0, "properties", 4, "type"),
            "a property cannot be of type OBJECT (only STRING, INT, FLOAT, BOOL, BOOLEAN, DATE, "
            "DATETIME, TIME, DURATION, EMAIL, URI, SELECT, ENUM, MULTISELECT)",
        ),
    ]


def test_a_bad_default_of_a_table_points_at_its_cell_in_the_file() -> None:
    """Kestra validates `defaults` against the input at save time; podium points at the
    offending cell's line."""
    found = problems("""\
        id: f
        namespace: ns
        inputs:
          - id: disks
            type: TABLE
            columns:
              - id: size_gb
                type: INT
            defaults:
              - size_gb: 10
              - size_gb: ten
        tasks:
          - id: t
            type: io.kestra.plugin.core.log.Log
            message: hi
        """)
    assert found == ["f.yaml:11:18: inputs[0].defaults[1].size_gb: 'ten' is not an INT"]


# -- from every caller ----------------------------------------------------------------------

FLOW = """
id: provision
namespace: ns
inputs:
  - id: server
    type: OBJECT
    properties:
      - id: name
        type: STRING
      - id: cpus
        type: INT
        min: 1
  - id: disks
    type: TABLE
    required: false
    rows:
      max: 2
    columns:
      - id: size_gb
        type: INT
        max: 2048
      - id: mountpoint
        type: STRING
tasks:
  - id: show
    type: io.kestra.plugin.core.log.Log
    message: >-
      {{ inputs.server.name }} x{{ inputs.server.cpus }}
      {{ inputs.disks[0].mountpoint ?? 'none' }}
"""


@pytest.fixture
async def api(h: Harness) -> AsyncIterator[str]:
    await h.flow(FLOW)
    async with serving(h) as url:
        yield url


async def test_api_multipart_fields_hold_json_records(h: Harness, api: str) -> None:
    """Kestra's form sends each input as a text part; OBJECT/TABLE parts are JSON text."""
    status, doc, _ = await call(
        "POST",
        f"{api}/api/v1/executions/ns/provision?wait=true",
        data=form(
            server='{"name": "web", "cpus": "2"}',
            disks='[{"size_gb": 20, "mountpoint": "/data"}]',
        ),
    )
    assert status == 200, doc
    assert doc["inputs"] == {
        "server": {"name": "web", "cpus": 2},
        "disks": [{"size_gb": 20, "mountpoint": "/data"}],
    }
    execution = await h.engine.wait(doc["id"])
    assert await h.logs(execution) == ["web x2 /data"]


async def test_api_json_body_takes_records_as_they_are(api: str) -> None:
    status, doc, _ = await call(
        "POST",
        f"{api}/api/v1/executions/ns/provision?wait=true",
        json={"server": {"name": "db", "cpus": 8}},
    )
    assert status == 200, doc
    assert doc["inputs"] == {"server": {"name": "db", "cpus": 8}, "disks": None}


async def test_api_refuses_bad_records_with_every_message(api: str) -> None:
    """Kestra answers 422 with one constraint violation per bad cell."""
    status, doc, _ = await call(
        "POST",
        f"{api}/api/v1/executions/ns/provision",
        json={
            "server": {"name": "db", "cpus": "many"},
            "disks": [
                {"size_gb": 4096, "mountpoint": "/a"},
                {},
                {"size_gb": 1, "mountpoint": "/c"},
            ],
        },
    )
    assert status == 422
    assert [e["message"] for e in doc["_embedded"]["errors"]] == [
        "input 'server.cpus': 'many' is not an INT",
        "input 'disks[0].size_gb': 4096 is greater than 2048 (max)",
        "input 'disks[1].size_gb': a value is required",
        "input 'disks[1].mountpoint': a value is required",
        "input 'disks': has 3 rows; it must have at most 2 rows",
    ]


async def test_a_subflow_passes_a_record_rendered_or_literal(h: Harness) -> None:
    """Kestra Subflow `inputs`: a map is rendered and typed by the child's declarations."""
    await h.flow(FLOW)
    parent = await h.run("""
        id: parent
        namespace: ns
        tasks:
          - id: spec
            type: io.kestra.plugin.core.debug.Return
            format: '[{"size_gb": 30, "mountpoint": "/srv"}]'
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: ns
            flowId: provision
            inputs:
              server:
                name: api
                cpus: 3
              disks: "{{ outputs.spec.value }}"
        """)
    assert parent.state.current.value == "SUCCESS", parent.state
    child = await h.engine.wait(parent.task_runs[-1].outputs["executionId"])
    assert child.inputs["disks"] == [{"size_gb": 30, "mountpoint": "/srv"}]
    assert await h.logs(child) == ["api x3 /srv"]


def test_podium_run_reads_records_from_the_command_line(tmp_path: Path) -> None:
    flow = tmp_path / "provision.yaml"
    flow.write_text(FLOW)

    def run(*inputs: str) -> subprocess.CompletedProcess[str]:
        args = [sys.executable, "-m", "daemon", "run", str(flow), "--json"]
        args += [a for i in inputs for a in ("-i", i)]
        return subprocess.run(
            [*args, "--data-dir", str(tmp_path / "data")],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )

    good = run('server={"name": "cli", "cpus": 1}', "disks=- {size_gb: 5, mountpoint: /x}")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["inputs"]["disks"] == [{"size_gb": 5, "mountpoint": "/x"}]
    bad = run("server=cpus: 0")
    assert bad.returncode == 2
    assert "input 'server.name': a value is required" in bad.stderr
    assert "input 'server.cpus': 0 is less than 1 (min)" in bad.stderr


def test_a_pause_may_ask_for_a_record_on_resume() -> None:
    """Kestra Pause `onResume` takes the same inputs as a flow; the loader's walk over
    models that may hold tasks must not loop on an input holding inputs."""
    flow = load_flow(
        textwrap.dedent("""\
        id: f
        namespace: ns
        tasks:
          - id: wait
            type: io.kestra.plugin.core.flow.Pause
            onResume:
              - id: review
                type: OBJECT
                properties:
                  - id: approved
                    type: BOOL
        """)
    )
    assert [task.id for task in flow.all_tasks()] == ["wait"]
