"""The flow format's JSON Schema: generated from the registered plug-ins, served where
Kestra serves it, and good enough for VS Code's YAML language server to check flow files.

Kestra serves its schema at `/api/v1/plugins/schemas/flow` (PluginController) and its docs
show `# yaml-language-server: $schema=...` for editing flows outside the UI; the language
server here is the real `yaml-language-server` npm package, run headless over stdio.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from daemon.flows.registry import Plugins, default_plugins
from daemon.flows.schema import flow_schema
from daemon.sdk.plugin import Output, Task
from tests.api_helpers import call, serving
from tests.harness import Harness

ROOT = Path(__file__).resolve().parent.parent
UI = ROOT / "daemon" / "api" / "ui" / "frontend"
FLOWS = ROOT / "flows"


def ui_node_modules() -> Path:
    """the front end's node_modules, installed from its package-lock.json when missing (npm ci)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("these tests need Node.js and npm: apt-get install nodejs npm")
    modules = UI / "node_modules"
    if not (modules / "yaml-language-server").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=UI, check=True, timeout=600)
    return modules


@pytest.fixture(scope="module")
def schema_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    ui_node_modules()
    folder = tmp_path_factory.mktemp("schema")
    path = folder / "flow.schema.json"
    path.write_text(json.dumps(flow_schema()))
    yield path


def diagnostics(schema: Path, text: str, name: str = "flow.yaml") -> list[dict[str, Any]]:
    """What VS Code's YAML language server reports for `text`, which names the schema in a
    modeline as the README shows."""
    path = schema.parent / name
    path.write_text(f"# yaml-language-server: $schema={schema.name}\n{text}")
    result = subprocess.run(
        ["node", str(UI / "tools" / "yamlls-diagnostics.mjs"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=UI,
    )
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


def test_every_registered_task_trigger_and_condition_has_a_definition() -> None:
    schema = flow_schema()
    definitions = schema["definitions"]
    plugins = default_plugins()
    for registry, kind in (
        (plugins.tasks, "tasks"),
        (plugins.triggers, "triggers"),
        (plugins.conditions, "conditions"),
    ):
        classes = registry.classes()
        assert definitions[kind]["anyOf"] == [
            {"$ref": f"#/definitions/{cls.types[0]}"} for cls in classes
        ]
        for cls in classes:
            found = definitions[cls.types[0]]
            assert found["properties"]["type"]["enum"] == list(cls.types)
            assert found["additionalProperties"] is False
            assert found["title"] == cls.types[0].rsplit(".", 1)[-1]
            assert found["examples"][0]["type"] == cls.types[0]
    flow = definitions["Flow"]
    assert flow["properties"]["tasks"]["items"] == {"$ref": "#/definitions/tasks"}
    assert flow["properties"]["triggers"]["items"] == {"$ref": "#/definitions/triggers"}
    assert {"source", "path", "revision"}.isdisjoint(flow["properties"])


def test_properties_carry_types_enums_defaults_and_descriptions() -> None:
    definitions = flow_schema()["definitions"]
    log = definitions["io.kestra.plugin.core.log.Log"]
    assert log["description"].startswith("Write one message")
    level = log["properties"]["level"]  # an expression may stand for it (Kestra's Property)
    assert level["anyOf"][0]["enum"] == ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
    assert level["default"] == "INFO"
    assert log["properties"]["retry"]["description"].startswith("Run the task again")
    # `message` may come from pluginDefaults: marked required, not demanded of the task
    assert log["required"] == ["id", "type"] and log["properties"]["message"]["$required"]
    # a templated integer may hold an expression instead
    timeout = definitions["io.kestra.plugin.core.flow.Sleep"]["properties"]["timeout"]
    assert {"type": "string", "pattern": r".*\{[{%].*"} in timeout["anyOf"]
    # every accepted spelling of a property is allowed: maxAttempts and Kestra's maxAttempt
    retry = definitions["RetryModel"]["properties"]
    assert "maxAttempts" in retry and retry["maxAttempt"]["deprecated"] is True
    # `when`, runIf by its newer name (Kestra's task-when.yml), is not struck through
    assert "deprecated" not in log["properties"]["when"]
    assert log["properties"]["when"]["description"] == log["properties"]["runIf"]["description"]
    assert "run_if" not in log["properties"]
    # a property Kestra deprecated says what to write instead
    name = definitions["InputSpec"]["properties"]["name"]
    assert name["deprecated"] is True and name["description"].endswith("Deprecated: use 'id'.")
    # the task runners of script tasks, told apart by their type
    runner = definitions["io.kestra.plugin.scripts.shell.Commands"]["properties"]["taskRunner"]
    assert {one["$ref"] for one in runner["oneOf"]} == {
        "#/definitions/Process",
        "#/definitions/Docker",
    }


class Greeting(Task):
    """Greet someone (a plug-in of a package podium has never seen)."""

    types: ClassVar[tuple[str, ...]] = ("com.example.Greeting",)
    examples: ClassVar[tuple[str, ...]] = ("id: hi\ntype: com.example.Greeting\nwho: Ada\n",)

    who: str
    """Whom to greet."""

    async def run(self, ctx: Any) -> Output:
        return {"greeting": f"Hello, {self.who}"}


def test_a_plugin_of_another_package_is_in_the_schema_with_its_own_example() -> None:
    plugins = Plugins()
    plugins.tasks.register(Greeting)
    definitions = flow_schema(plugins)["definitions"]
    assert definitions["tasks"]["anyOf"] == [{"$ref": "#/definitions/com.example.Greeting"}]
    greeting = definitions["com.example.Greeting"]
    assert greeting["properties"]["who"]["description"] == "Whom to greet."
    assert greeting["examples"] == [{"id": "hi", "type": "com.example.Greeting", "who": "Ada"}]


def test_yaml_language_server_accepts_every_example_flow(schema_file: Path) -> None:
    for path in sorted(FLOWS.glob("*.yaml")):
        found = diagnostics(schema_file, path.read_text(), name=path.name)
        assert found == [], (path.name, found)


def test_yaml_language_server_reports_an_unknown_property_at_its_line(schema_file: Path) -> None:
    text = (
        "id: hello\n"
        "namespace: company.team\n"
        "tasks:\n"
        "  - id: hello\n"
        "    type: io.kestra.plugin.core.log.Log\n"
        "    message: hi\n"
        "    mesage: typo\n"
        "  - id: wait\n"
        "    type: io.kestra.plugin.core.flow.Sleep\n"
        '    duration: "{{ inputs.d }}"\n'
        "    retry:\n"
        "      type: constant\n"
        "      maxAttempt: 2\n"
    )
    found = diagnostics(schema_file, text)
    assert [(d["range"]["start"]["line"], d["message"]) for d in found] == [
        (7, "Property mesage is not allowed.")  # line 7 (0-based) of the file: the modeline is 0
    ]


def test_yaml_language_server_reports_a_wrong_enum_value(schema_file: Path) -> None:
    text = (
        "id: hello\nnamespace: company.team\ntasks:\n  - id: hello\n"
        "    type: io.kestra.plugin.core.log.Log\n    message: hi\n    level: LOUD\n"
    )
    found = diagnostics(schema_file, text)
    assert len(found) == 1 and found[0]["range"]["start"]["line"] == 7
    assert "TRACE" in found[0]["message"]


async def test_the_api_serves_the_schema_at_kestras_paths(h: Harness) -> None:
    async with serving(h) as url:
        for path in ("/api/v1/plugins/schemas/flow", "/api/v1/main/plugins/schemas/FLOW"):
            status, doc, resp = await call("GET", url + path)
            assert status == 200, path
            assert doc["$ref"] == "#/definitions/Flow"
            assert resp.headers["Cache-Control"] == "public, max-age=3600"
        status, doc, _ = await call("GET", url + "/api/v1/plugins/schemas/task?arrayOf=true")
        assert (status, doc["type"], doc["items"]) == (
            200,
            "array",
            {"$ref": "#/definitions/tasks"},
        )
        status, doc, _ = await call("GET", url + "/api/v1/plugins/schemas/dashboard")
        assert status == 404
        assert doc["message"].startswith("Not Found: no schema of type 'dashboard'")
        status, doc, _ = await call("GET", url + "/api/v1/plugins/schemas/flow?arrayOf=maybe")
        assert (status, doc) == (
            400,
            {"message": "Bad Request: arrayOf must be true or false, not 'maybe'"},
        )
