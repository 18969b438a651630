"""Malformed flow files: the loader answers a `Flow` or a `FlowError` pointing into the file.

Hypothesis writes the files three ways: any text at all, YAML documents built from podium's
own property and type names (so they get past the YAML layer into the models), and edits of
the example flows in flows/ (a key dropped, a value of the wrong type, an id duplicated, a
dependsOn cycle). Whatever it writes, nothing but `FlowError` may come out, each problem with
a message and a position inside the text, and nothing may hang. The bugs it found are pinned
below with their exact messages.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.flows.definition import Flow
from daemon.flows.loader import load_flow, load_flow_file
from daemon.flows.registry import default_plugins
from daemon.sdk.errors import FlowError, InputError
from daemon.sdk.inputs import InputSpec, coerce_inputs

ROOT = Path(__file__).resolve().parent.parent
FLOWS = sorted((ROOT / "flows").glob("*.yaml"))
FUZZ = settings(
    max_examples=150,
    deadline=timedelta(seconds=5),
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_PLUGINS = default_plugins()
TYPE_NAMES = sorted(
    {*_PLUGINS.tasks.names(), *_PLUGINS.triggers.names(), *_PLUGINS.conditions.names()}
)
TASK_TYPES = _PLUGINS.tasks.names()
PROPERTY_NAMES = sorted(
    {
        "id",
        "namespace",
        "tasks",
        "type",
        "dependsOn",
        "inputs",
        "triggers",
        "errors",
        "finally",
        "pluginDefaults",
        "taskDefaults",
        "concurrency",
        "labels",
        "variables",
        "outputs",
        "description",
        "disabled",
        "revision",
        "limit",
        "behavior",
        "values",
        "forced",
        "defaults",
        "required",
        "then",
        "else",
        "cases",
        "message",
        "value",
        "conditions",
        "cron",
        "key",
        "retry",
        "timeout",
        "allowFailure",
        "runIf",
        *(
            field.alias or name
            for registry in (_PLUGINS.tasks, _PLUGINS.triggers, _PLUGINS.conditions)
            for type_name in registry.names()
            for name, field in registry.get(type_name).model_fields.items()
        ),
    }
)
IDS = ["a", "b", "c", "hello", "1bad", "a.b", ""]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(TYPE_NAMES)
    | st.sampled_from(IDS)
    | st.sampled_from(["PT1S", "P1D", "STRING", "INT", "QUEUE", "{{ inputs.x }}"])
)
keys = st.sampled_from(PROPERTY_NAMES) | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)


@st.composite
def tasks(draw: st.DrawFn) -> dict[str, Any]:
    """A task-ish mapping: a real type, a colliding id, maybe dependsOn, random properties."""
    task: dict[str, Any] = {
        "id": draw(st.sampled_from(IDS)),
        "type": draw(st.sampled_from(TASK_TYPES)),
    }
    if draw(st.booleans()):
        task["dependsOn"] = draw(st.lists(st.sampled_from(IDS), max_size=3))
    task.update(draw(st.dictionaries(keys, values, max_size=3)))
    return task


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """A flow-shaped document most of the time, any YAML value now and then."""
    if draw(st.integers(0, 9)) == 0:
        return draw(values)
    doc: dict[str, Any] = {
        "id": draw(st.sampled_from(IDS)),
        "namespace": draw(st.sampled_from(["ns", "Ns", "a.b", ""])),
    }
    doc["tasks"] = draw(st.lists(tasks(), max_size=4) | values)
    for name in draw(st.lists(st.sampled_from(PROPERTY_NAMES), max_size=4)):
        doc[name] = draw(values | st.lists(tasks(), max_size=2))
    return doc


def assert_loads_or_explains(text: str) -> Flow | FlowError:
    """The property every input must have; returns what happened for stronger checks."""
    try:
        return load_flow(text, "fuzz.yaml")
    except FlowError as exc:
        assert exc.problems, "a FlowError with no problem"
        lines = text.count("\n") + text.count("\r") + 1
        for problem in exc.problems:
            assert problem.file == "fuzz.yaml"
            assert isinstance(problem.message, str) and problem.message.strip(), problem
            assert 1 <= problem.line <= lines + 1 and problem.column >= 1, problem
        return exc


def dump(value: Any) -> str:
    return yaml.safe_dump(value, allow_unicode=True, sort_keys=False)


@pytest.mark.timeout(60)
@FUZZ
@given(st.text(max_size=300))
def test_any_text_loads_or_fails_with_located_problems(text: str) -> None:
    assert_loads_or_explains(text)


@pytest.mark.timeout(60)
@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["utf-8", "latin-1", "utf-16"]))
def test_decoded_bytes_load_or_fail_with_located_problems(data: bytes, encoding: str) -> None:
    assert_loads_or_explains(data.decode(encoding, "replace"))


@pytest.mark.timeout(60)
@FUZZ
@given(
    st.lists(
        st.sampled_from(
            [
                "id: a\n",
                "namespace: ns\n",
                "tasks:\n",
                "  - ",
                "&x ",
                "*x",
                "[",
                "]",
                "{",
                "}",
                "!!int ",
                "!!timestamp ",
                "!!binary ",
                "!!float ",
                "? ",
                ": ",
                "- ",
                "<<: ",
                "'",
                '"',
                "#",
                "\t",
                "\x00",
                "\ufeff",
                "---\n",
                "...\n",
                "|\n",
                ">-\n",
                "9" * 40,
                "\n",
                " ",
            ]
        ),
        max_size=40,
    ).map("".join)
)
def test_yaml_syntax_fragments_load_or_fail_with_located_problems(text: str) -> None:
    assert_loads_or_explains(text)


@pytest.mark.timeout(90)
@FUZZ
@given(documents())
def test_flow_shaped_documents_load_or_fail_with_located_problems(doc: Any) -> None:
    assert_loads_or_explains(dump(doc))


# -- edits of the example flows ------------------------------------------------------------

EXAMPLES = {path.name: yaml.safe_load(path.read_text()) for path in FLOWS}


def containers(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every mapping and list in a document, the root included."""
    out = [path] if isinstance(value, dict | list) else []
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else []
    )
    for key, item in items:
        out.extend(containers(item, (*path, key)))
    return out


def at(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def edited_examples(draw: st.DrawFn) -> tuple[str, str, Any]:
    """(example name, kind of edit, edited document)."""
    name = draw(st.sampled_from(sorted(EXAMPLES)))
    doc = yaml.safe_load(dump(EXAMPLES[name]))  # a private copy
    target = at(doc, draw(st.sampled_from(containers(doc))))
    keys_of = list(target) if isinstance(target, dict) else list(range(len(target)))
    kind = draw(st.sampled_from(["delete", "retype", "rename"])) if keys_of else "retype"
    if kind == "delete":
        del target[draw(st.sampled_from(keys_of))]
    elif kind == "rename" and isinstance(target, dict):
        old = draw(st.sampled_from(keys_of))
        target[old + draw(st.sampled_from(["s", "_", "X"]))] = target.pop(old)
    elif keys_of:
        key = draw(st.sampled_from(keys_of))
        current = target[key]
        target[key] = draw(values.filter(lambda v: type(v) is not type(current)))
    else:
        target.append(draw(values))
    return name, kind, doc


@pytest.mark.timeout(90)
@FUZZ
@given(edited_examples())
def test_edited_example_flows_load_or_fail_with_located_problems(
    edit: tuple[str, str, Any],
) -> None:
    _, _, doc = edit
    assert_loads_or_explains(dump(doc))


@pytest.mark.timeout(60)
@settings(FUZZ, max_examples=40)
@given(st.sampled_from(sorted(EXAMPLES)), st.data())
def test_a_duplicated_task_id_is_reported_at_the_copy(name: str, data: st.DataObject) -> None:
    doc = yaml.safe_load(dump(EXAMPLES[name]))
    index = data.draw(st.integers(0, len(doc["tasks"]) - 1))
    doc["tasks"].append(dict(doc["tasks"][index]))
    result = assert_loads_or_explains(dump(doc))
    assert isinstance(result, FlowError)
    copy = f"tasks[{len(doc['tasks']) - 1}].id"
    assert f"duplicate task id '{doc['tasks'][index]['id']}'" in [
        p.message for p in result.problems if p.path == copy
    ]


@pytest.mark.timeout(60)
@settings(FUZZ, max_examples=40)
@given(st.sampled_from(sorted(EXAMPLES)), st.integers(2, 6), st.data())
def test_a_dependson_cycle_is_reported_with_its_members(
    name: str, size: int, data: st.DataObject
) -> None:
    doc = yaml.safe_load(dump(EXAMPLES[name]))
    ids = [f"c{i}" for i in range(size)]
    order = data.draw(st.permutations(ids))
    for i, task_id in enumerate(order):
        doc["tasks"].append(
            {
                "id": task_id,
                "type": "io.kestra.plugin.core.log.Log",
                "message": "x",
                "dependsOn": [order[(i + 1) % size]],
            }
        )
    result = assert_loads_or_explains(dump(doc))
    assert isinstance(result, FlowError)
    [cycle] = [p.message for p in result.problems if p.message.startswith("dependsOn cycle")]
    members = cycle.removeprefix("dependsOn cycle: ").split(" -> ")
    assert members[0] == members[-1] and sorted(members[:-1]) == sorted(ids)


def test_the_example_flows_load_unedited() -> None:
    for path in FLOWS:
        assert isinstance(load_flow_file(path), Flow), path


# -- `podium validate` on generated files ---------------------------------------------------


@pytest.mark.timeout(90)
@settings(FUZZ, max_examples=4, deadline=None)
@given(documents() | st.text(max_size=200).map(yaml.safe_dump))
def test_validate_exits_2_with_located_lines_on_generated_bad_files(doc: Any) -> None:
    import tempfile

    text = doc if isinstance(doc, str) else dump(doc)
    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "gen.yaml"
        file.write_text(text, encoding="utf-8")
        expected = assert_loads_or_explains(text)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "daemon",
                "validate",
                str(file),
                "--data-dir",
                str(Path(tmp) / "data"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    if isinstance(expected, Flow):
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        str(p).replace("fuzz.yaml", str(file), 1) for p in expected.problems
    ]


# -- what the fuzzers found -----------------------------------------------------------------

BAD_FILES = {
    "recursive_alias.yaml": (
        "id: a\nnamespace: ns\ntasks: &t\n  - *t\n",
        "{file}:3:8: tasks[0]: an alias refers to a value that contains it",
    ),
    "alias_bomb.yaml": (
        "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
        + "".join(
            f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n"
            for p, n in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "{file}:1:14: e[7][8][9][0][2]: aliases expand to more than 100000 values",
    ),
    "deep.yaml": (
        "id: " + "[" * 150 + "]" * 150 + "\n",
        "{file}:1:104: invalid YAML: nested more than 100 levels deep",
    ),
    "timestamp.yaml": (
        "id: !!timestamp soon\n",
        "{file}:1:5: id: invalid YAML: cannot read 'soon' as timestamp",
    ),
    "int_tag.yaml": (
        "id: a\nnamespace: ns\nrevision: !!int twelve\n",
        "{file}:3:11: revision: invalid YAML: cannot read 'twelve' as int",
    ),
    "float_tag.yaml": (
        "limit: !!float x\n",
        "{file}:1:8: limit: invalid YAML: cannot read 'x' as float",
    ),
    "huge_int.yaml": (
        "revision: " + "9" * 5000 + "\n",
        f"{{file}}:1:11: revision: invalid YAML: cannot read '{'9' * 40}...' as int",
    ),
    "nul.yaml": ("id: a\x00\n", "{file}:1:6: invalid YAML: character U+0000 is not allowed"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_malformed_yaml_found_by_fuzzing_is_a_located_flow_error(name: str) -> None:
    text, expected = BAD_FILES[name]
    with pytest.raises(FlowError) as caught:
        load_flow(text, name)
    assert str(caught.value).splitlines()[0] == expected.format(file=name)


def test_validate_reports_each_fuzzed_bad_file_and_exits_2(tmp_path: Path) -> None:
    for name, (text, _) in BAD_FILES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "latin1.yaml").write_bytes("id: caf\xe9\n".encode("latin-1"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "daemon",
            "validate",
            str(tmp_path),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    reported = {line.split(":", 1)[0] for line in result.stderr.splitlines()}
    assert reported == {str(tmp_path / name) for name in [*BAD_FILES, "latin1.yaml"]}
    for name, (_, expected) in BAD_FILES.items():
        assert expected.format(file=tmp_path / name) in result.stderr.splitlines()
    assert (
        f"{tmp_path / 'latin1.yaml'}:1:1: cannot read flow file: 'utf-8' codec can't "
        "decode byte 0xe9 in position 7: invalid continuation byte"
    ) in result.stderr


# -- input values, as the API, the CLI and triggers hand them to a flow ----------------------

INPUT_TYPES = [
    "STRING",
    "INT",
    "FLOAT",
    "BOOLEAN",
    "DATETIME",
    "DATE",
    "TIME",
    "DURATION",
    "JSON",
    "YAML",
    "ARRAY",
    "URI",
    "EMAIL",
]
ALIAS_BOMB = BAD_FILES["alias_bomb.yaml"][0]
input_values = (
    values
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=True)
    | st.sampled_from(
        [
            "[" * 3000,
            "&a [*a]",
            ALIAS_BOMB,
            "a: !!timestamp x",
            "\ud800",
            '{"a": 1' + "0" * 30 + "}",
            "9999-12-31T23:59:59-23:59",
            "P9999999999D",
            "PT99999999999999999999H",
            "9" * 25,
            "1e400",
            "- a\n- b\n",
            "yes",
        ]
    )
    | values.map(lambda v: yaml.safe_dump(v))
    | values.map(repr)
)


@pytest.mark.timeout(60)
@settings(FUZZ, max_examples=300)
@given(st.sampled_from(INPUT_TYPES), input_values)
def test_any_input_value_is_coerced_to_storable_json_or_refused(kind: str, value: Any) -> None:
    props = {"id": "x", "type": kind, **({"itemType": "STRING"} if kind == "ARRAY" else {})}
    try:
        coerced = coerce_inputs([InputSpec.model_validate(props)], {"x": value})
    except InputError as exc:
        assert exc.messages and all(m.startswith("input 'x") for m in exc.messages), exc
    else:
        orjson.dumps(coerced)  # what the store will do with it


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("JSON", "[" * 100_000, "is not valid JSON (nested too deeply)"),  # was RecursionError
        (
            "JSON",
            '{"a": 1' + "0" * 30 + "}",
            "holds a value podium cannot store (Integer exceeds 64-bit range)",
        ),  # the store failed
        (
            "STRING",
            "\udcff",
            "holds a value podium cannot store (str is not valid UTF-8: surrogates not allowed)",
        ),  # `podium run -i x=$'\xff'`
        ("INT", 10**30, "holds a value podium cannot store (Integer exceeds 64-bit range)"),
        ("INT", "9" * 5000, "is not an INT"),
        ("FLOAT", 10**400, "is not a FLOAT"),  # was OverflowError
        ("DATETIME", "9999-12-31T23:59:59-23:59", "is out of range once in UTC"),
        ("DURATION", "P9999999999D", "is a DURATION out of range (at most 999999999 days)"),
        (
            "YAML",
            ALIAS_BOMB,
            "is not valid YAML (aliases expand to more than 100000 values at line 1 column 14)",
        ),  # hung
        (
            "YAML",
            "&a [*a]",
            "is not valid YAML (an alias refers to a value that contains it at line 1 column 1)",
        ),  # was RecursionError
        (
            "YAML",
            "a: !!timestamp x",
            "is not valid YAML (cannot read 'x' as timestamp at line 1 column 4)",
        ),  # was AttributeError
        ("ARRAY", "[" * 100_000, "is nested too deeply"),
    ],
)
def test_input_values_that_crashed_coercion_are_refused_with_a_reason(
    kind: str, value: Any, message: str
) -> None:
    props = {"id": "x", "type": kind, **({"itemType": "STRING"} if kind == "ARRAY" else {})}
    with pytest.raises(InputError) as caught:
        coerce_inputs([InputSpec.model_validate(props)], {"x": value})
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    assert caught.value.messages == [f"input 'x': {shown} {message}"]
