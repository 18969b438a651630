"""Named plugin defaults: a `pluginDefaults` entry with a `ref`, applied only to the plug-ins
that ask for it with `pluginDefaultsRef`, from the flow or from the daemon's
`plugin-defaults` setting, with Kestra's precedence (PluginDefaultService)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from daemon.config.settings import load_settings
from daemon.engine.core import Engine
from daemon.engine.resources import EngineOptions
from daemon.flows.defaults import deep_merge, global_defaults
from daemon.flows.definition import Flow, PluginDefault
from daemon.flows.loader import load_flow
from daemon.flows.registry import default_plugins
from daemon.sdk.errors import FlowError
from daemon.store import open_store
from tests.api_helpers import call, serving, yaml_body
from tests.harness import Harness

ROOT = Path(__file__).resolve().parent.parent
LOG = "io.kestra.plugin.core.log.Log"


def flow(source: str, *global_: dict[str, Any]) -> Flow:
    defaults = [PluginDefault.model_validate(d) for d in global_]
    return load_flow(textwrap.dedent(source).lstrip(), "f.yaml", None, defaults)


def problems(source: str, *global_: dict[str, Any]) -> list[str]:
    with pytest.raises(FlowError) as caught:
        flow(source, *global_)
    return [str(p) for p in caught.value.problems]


def attr(loaded: Flow, index: int, name: str) -> Any:
    return getattr(loaded.tasks[index], name)


def test_a_named_default_applies_only_to_the_plugin_that_references_it() -> None:
    """Kestra PluginDefaultServiceTest.shouldApplyRefDefaultOnlyToReferencingPlugin."""
    loaded = flow(f"""
        id: f
        namespace: ns
        tasks:
          - id: referencing
            type: {LOG}
            message: hi
            pluginDefaultsRef: quiet
          - id: plain
            type: {LOG}
            message: hi
        pluginDefaults:
          - type: {LOG}
            ref: quiet
            values:
              level: DEBUG
        """)
    assert [t.level for t in loaded.tasks] == ["DEBUG", "INFO"]  # type: ignore[attr-defined]


def test_a_reference_suppresses_the_type_matched_defaults() -> None:
    """Kestra PluginDefaultServiceTest.shouldSuppressTypeMatchedDefaultWhenRefIsSet."""
    loaded = flow(f"""
        id: f
        namespace: ns
        tasks:
          - id: referencing
            type: {LOG}
            pluginDefaultsRef: cfg
          - id: plain
            type: {LOG}
        pluginDefaults:
          - type: {LOG}
            values:
              message: typed
              level: ERROR
          - type: {LOG}
            ref: cfg
            values:
              message: named
        """)
    assert (attr(loaded, 0, "message"), attr(loaded, 0, "level")) == ("named", "INFO")
    assert (attr(loaded, 1, "message"), attr(loaded, 1, "level")) == ("typed", "ERROR")


def test_the_plugins_own_value_wins_unless_the_named_default_is_forced() -> None:
    """Kestra PluginDefaultServiceTest.shouldYieldToTaskValueForNonForcedRef and
    shouldLetFlowForcedRefOverrideTaskValue."""
    source = f"""
        id: f
        namespace: ns
        tasks:
          - id: t
            type: {LOG}
            message: mine
            pluginDefaultsRef: cfg
        pluginDefaults:
          - type: {LOG}
            ref: cfg
            FORCED
            values:
              message: theirs
        """
    assert attr(flow(source.replace("FORCED", "forced: false")), 0, "message") == "mine"
    assert attr(flow(source.replace("FORCED", "forced: true")), 0, "message") == "theirs"


def test_a_forced_type_default_takes_over_a_reference() -> None:
    """Kestra PluginDefaultServiceTest.shouldEnforceForcedTypeDefaultOnRefPluginAndWarn:
    enforcement wins and the named default is not stacked on top of it."""
    loaded = flow(f"""
        id: f
        namespace: ns
        tasks:
          - id: t
            type: {LOG}
            message: mine
            pluginDefaultsRef: cfg
        pluginDefaults:
          - type: io.kestra.plugin.core.log
            forced: true
            values:
              level: WARN
          - type: {LOG}
            ref: cfg
            values:
              level: DEBUG
              message: named
        """)
    assert (attr(loaded, 0, "level"), attr(loaded, 0, "message")) == ("WARN", "mine")


def test_triggers_and_typed_parts_may_reference_a_named_default() -> None:
    """Kestra PluginDefaultServiceTest.shouldApplyRefDefaultToTrigger and
    shouldApplyRefDefaultToNestedTaskRunner."""
    loaded = flow("""
        id: f
        namespace: ns
        tasks:
          - id: script
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["true"]
            taskRunner:
              type: io.kestra.plugin.scripts.runner.docker.Docker
              pluginDefaultsRef: local-images
        triggers:
          - id: daily
            type: io.kestra.plugin.core.trigger.Schedule
            pluginDefaultsRef: paris
        pluginDefaults:
          - type: io.kestra.plugin.core.trigger.Schedule
            ref: paris
            values:
              cron: "0 10 * * *"
              timezone: Europe/Paris
          - type: io.kestra.plugin.scripts.runner.docker.Docker
            ref: local-images
            values:
              pullPolicy: NEVER
        """)
    trigger = loaded.triggers[0]
    assert (trigger.cron, trigger.timezone) == ("0 10 * * *", "Europe/Paris")  # type: ignore[attr-defined]
    assert attr(loaded, 0, "task_runner").pull_policy == "NEVER"


def test_a_named_default_written_with_an_older_type_name_applies() -> None:
    """Kestra PluginDefaultServiceTest.shouldApplyRefDefaultDeclaredWithAliasType."""
    loaded = flow(f"""
        id: f
        namespace: ns
        tasks:
          - id: t
            type: {LOG}
            message: hi
            pluginDefaultsRef: cfg
        pluginDefaults:
          - type: io.kestra.core.tasks.log.Log
            ref: cfg
            values:
              level: TRACE
        """)
    assert attr(loaded, 0, "level") == "TRACE"


def test_an_unknown_reference_is_an_error_at_its_line() -> None:
    """Kestra PluginDefaultServiceTest.shouldReportUnresolvedRefForValidation (FlowService
    refuses the flow) and PluginDefaultsRefNotFoundException's message."""
    assert problems(f"""
        id: f
        namespace: ns
        tasks:
          - id: ok
            type: {LOG}
            message: hi
            pluginDefaultsRef: known
          - id: broken
            type: {LOG}
            message: hi
            pluginDefaultsRef: missing
        pluginDefaults:
          - type: {LOG}
            ref: known
            values:
              level: WARN
        """) == [
        "f.yaml:11:24: tasks[1].pluginDefaultsRef: No plugin-defaults exists for "
        "pluginDefaultsRef: 'missing' (refs declared in the flow's pluginDefaults and the "
        "plugin-defaults setting: known)"
    ]


def test_a_reference_to_a_default_of_another_type_is_an_error() -> None:
    """Kestra PluginDefaultServiceTest.shouldNotApplyRefDefaultOnTypeMismatch: the marker
    stays, which Kestra's validation reports as unresolved."""
    assert problems(f"""
        id: f
        namespace: ns
        tasks:
          - id: t
            type: io.kestra.plugin.core.debug.Return
            format: x
            pluginDefaultsRef: cfg
        pluginDefaults:
          - type: {LOG}
            ref: cfg
            values:
              level: WARN
        """) == [
        "f.yaml:7:24: tasks[0].pluginDefaultsRef: the plugin-defaults 'cfg' is declared for "
        f"type {LOG}, not for this plug-in's type io.kestra.plugin.core.debug.Return"
    ]


def test_a_reference_without_any_named_default_and_a_malformed_one_are_errors() -> None:
    """With no pluginDefaults at all the marker is still checked (never an "unknown
    property"); a reference that is not text says so."""
    assert problems(f"""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: {LOG}
            message: hi
            pluginDefaultsRef: nothing
          - id: b
            type: {LOG}
            message: hi
            pluginDefaultsRef: [1, 2]
          - id: c
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["true"]
            taskRunner:
              type: io.kestra.plugin.scripts.runner.docker.Docker
              pluginDefaultsRef: nothing
        """) == [
        "f.yaml:7:24: tasks[0].pluginDefaultsRef: No plugin-defaults exists for "
        "pluginDefaultsRef: 'nothing' (refs declared in the flow's pluginDefaults and the "
        "plugin-defaults setting: none)",
        "f.yaml:11:24: tasks[1].pluginDefaultsRef: pluginDefaultsRef must name a "
        "plugin-defaults ref, not [1, 2]",
        "f.yaml:17:26: tasks[2].taskRunner.pluginDefaultsRef: No plugin-defaults exists for "
        "pluginDefaultsRef: 'nothing' (refs declared in the flow's pluginDefaults and the "
        "plugin-defaults setting: none)",
    ]


def test_a_plugin_default_needs_a_type_values_and_a_non_empty_ref() -> None:
    """Kestra PluginDefaultValidator ("No 'type' provided", "No 'values' provided")."""
    found = problems(f"""
        id: f
        namespace: ns
        tasks:
          - id: a
            type: {LOG}
            message: hi
        pluginDefaults:
          - type: {LOG}
            ref: ""
            values: {{}}
          - ref: x
            values: {{}}
          - type: {LOG}
            rev: typo
            values: {{}}
        """)
    assert [line.split(": ", 2)[1] for line in found] == [
        "pluginDefaults[0].ref",
        "pluginDefaults[1]",
        "pluginDefaults[2].rev",
    ]


# -- the plugin-defaults setting (Kestra's global defaults) ----------------------------------


def test_named_defaults_may_come_from_the_setting_and_the_flows_win_when_not_forced() -> None:
    """Kestra PluginDefaultService: flow > namespace > global for non-forced defaults; a
    ref collapses to one winner, the closest non-forced one."""
    source = f"""
        id: f
        namespace: ns
        tasks:
          - id: t
            type: {LOG}
            pluginDefaultsRef: house
        FLOW
        """
    house = {"type": LOG, "ref": "house", "values": {"message": "global", "level": "WARN"}}
    assert (attr(flow(source.replace("FLOW", ""), house), 0, "message")) == "global"
    local = """pluginDefaults:
          - type: io.kestra.plugin.core.log.Log
            ref: house
            values:
              message: flow"""
    loaded = flow(source.replace("FLOW", local), house)
    # One winner, not a merge: the flow's entry shadows the global one entirely.
    assert (attr(loaded, 0, "message"), attr(loaded, 0, "level")) == ("flow", "INFO")


def test_forced_defaults_of_the_setting_win_over_the_flows() -> None:
    """Kestra PluginDefaultService: forced defaults follow the reverse precedence (global
    over flow), by type and by ref, so a flow cannot undo enforcement."""
    source = f"""
        id: f
        namespace: ns
        tasks:
          - id: typed
            type: {LOG}
            message: hi
          - id: named
            type: {LOG}
            message: hi
            pluginDefaultsRef: house
        pluginDefaults:
          - type: {LOG}
            forced: true
            values:
              level: DEBUG
          - type: io.kestra.plugin.core.debug.Return
            ref: house
            forced: true
            values:
              format: flow
        """
    loaded = flow(
        source,
        {"type": LOG, "forced": True, "values": {"level": "ERROR"}},
        {"type": LOG, "ref": "house", "forced": True, "values": {"message": "enforced"}},
    )
    assert attr(loaded, 0, "level") == "ERROR"
    # The forced type default takes over the named one, which otherwise applies (its
    # types: those of every entry with the name, Return and Log).
    assert (attr(loaded, 1, "level"), attr(loaded, 1, "message")) == ("ERROR", "hi")


def test_values_merge_as_kestras_deep_merge() -> None:
    """Kestra MapUtils.deepMerge (PluginDefaultServiceTest.injectFlowAndGlobals: list
    values add up): the second map wins, maps merge, lists add missing items."""
    assert deep_merge(
        {"a": 1, "m": {"x": 1, "y": 1}, "l": [1, 2], "keep": 3},
        {"a": 2, "m": {"y": 2}, "l": [2, 3], "keep": None},
    ) == {"a": 2, "m": {"x": 1, "y": 2}, "l": [1, 2, 3], "keep": 3}
    docker = {"type": "io.kestra.plugin.scripts.runner.docker.Docker", "pullPolicy": "NEVER"}
    process = {"type": "io.kestra.plugin.core.runner.Process"}
    assert deep_merge({"taskRunner": docker}, {"taskRunner": process}) == {"taskRunner": process}


def test_a_forced_default_may_swap_a_typed_part_for_another_type() -> None:
    """A forced taskRunner of another type replaces the task's own, not merged with the
    properties only the former type has (which podium, unlike Kestra, would refuse)."""
    loaded = flow("""
        id: f
        namespace: ns
        tasks:
          - id: script
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["true"]
            taskRunner:
              type: io.kestra.plugin.scripts.runner.docker.Docker
              pullPolicy: NEVER
        pluginDefaults:
          - type: io.kestra.plugin.scripts.shell.Commands
            forced: true
            values:
              taskRunner:
                type: io.kestra.plugin.core.runner.Process
        """)
    assert attr(loaded, 0, "task_runner").type == "io.kestra.plugin.core.runner.Process"


def test_the_setting_is_read_from_yaml_or_the_environment_and_checked() -> None:
    settings = load_settings(
        None,
        {},
        {"PODIUM_PLUGIN_DEFAULTS": "- type: io.kestra.plugin.core.log.Log\n  ref: x\n"
         "  values: {level: WARN}\n"},
    )  # fmt: skip
    assert [d.ref for d in global_defaults(settings.plugin_defaults)] == ["x"]
    with pytest.raises(ValueError) as caught:
        global_defaults([{"type": LOG, "values": {}}, {"values": 3}, "nope"])
    assert str(caught.value) == (
        "plugin-defaults[1].type: Field required; "
        "plugin-defaults[1].values: Input should be a valid dictionary; "
        "plugin-defaults[2]: Input should be a valid dictionary or instance of PluginDefault"
    )


def test_podium_validate_and_run_know_the_settings_named_defaults(tmp_path: Path) -> None:
    """`podium validate` reads podium.yaml (or --config) as `podium serve` would; `podium
    run` reads PODIUM_PLUGIN_DEFAULTS as it reads PODIUM_GLOBALS."""
    source = tmp_path / "f.yaml"
    source.write_text(f"id: f\nnamespace: ns\ntasks:\n  - id: t\n    type: {LOG}\n"
                      "    pluginDefaultsRef: house\n")  # fmt: skip
    config = tmp_path / "podium.yaml"
    config.write_text(f"plugin-defaults:\n  - type: {LOG}\n    ref: house\n"
                      "    values: {message: from the house}\n")  # fmt: skip

    def podium(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "daemon", *args, "--data-dir", str(tmp_path / "data")],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **(env or {})},
        )

    assert podium("validate", str(source)).returncode == 0  # ./podium.yaml
    config.rename(tmp_path / "elsewhere.yaml")
    missing = podium("validate", str(source))
    assert missing.returncode == 2
    assert "No plugin-defaults exists for pluginDefaultsRef: 'house'" in missing.stderr
    given = podium("validate", str(source), "--config", str(tmp_path / "elsewhere.yaml"))
    assert given.returncode == 0, given.stderr
    env = {"PODIUM_PLUGIN_DEFAULTS": json.dumps(
        [{"type": LOG, "ref": "house", "values": {"message": "from the env"}}]
    )}  # fmt: skip
    ran = podium("run", str(source), "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    assert "from the env" in [line["message"] for line in json.loads(ran.stdout)["logs"]]
    bad = podium("run", str(source), env={"PODIUM_PLUGIN_DEFAULTS": '[{"values": {}}]'})
    assert bad.returncode == 2
    assert "plugin-defaults[0].type: Field required" in bad.stderr


async def test_the_api_validates_flows_with_the_daemons_named_defaults(tmp_path: Path) -> None:
    """What `podium serve` passes to every flow it reads (flows directory, API, store)."""
    store = open_store(tmp_path / "data")
    await store.open()
    house = PluginDefault.model_validate({"type": LOG, "ref": "house", "values": {"message": "x"}})
    engine = Engine(
        tmp_path / "data",
        store,
        plugins=default_plugins(),
        options=EngineOptions(plugin_defaults=[house]),
    )
    h = Harness(engine, store)
    text = f"id: f\nnamespace: ns\ntasks:\n  - id: t\n    type: {LOG}\n    pluginDefaultsRef: REF\n"
    try:
        async with serving(h) as url:
            status, doc, _ = await call(
                "POST",
                f"{url}/api/v1/flows/validate",
                **yaml_body(text.replace("REF", "house") + "---\n" + text.replace("REF", "nope")),
            )
        assert stored_flow_loads_again(engine, text.replace("REF", "house"))
    finally:
        await h.close()
    assert status == 200
    assert doc[0]["errors"] == []
    # The message the named default would have given is missing too.
    assert [(e["line"], e["path"]) for e in doc[1]["errors"]] == [
        (11, "tasks[0]"),
        (13, "tasks[0].pluginDefaultsRef"),
    ]


def stored_flow_loads_again(engine: Engine, text: str) -> bool:
    """A revision read back from the store is loaded with the same defaults."""
    loaded = load_flow(text, "f.yaml", None, engine.catalog.plugin_defaults)
    return loaded.tasks[0].message == "x"  # type: ignore[attr-defined]


async def test_a_templated_task_gets_the_flows_defaults_named_ones_included(h: Harness) -> None:
    """Kestra TemplatedTaskTest.shouldApplyDefaultWhenSpecDeclaresPluginDefaultsRefGiven
    NamedPluginDefault (and its type-matched sibling): the rendered spec is defaulted as
    the flow's own tasks are; an unknown ref fails the task, saying so."""
    execution = await h.run("""
        id: f
        namespace: ns
        pluginDefaults:
          - type: io.kestra.plugin.core.debug.Return
            ref: alive
            values:
              format: It's alive!
          - type: io.kestra.plugin.core.log.Log
            values:
              message: typed default
        tasks:
          - id: named
            type: io.kestra.plugin.core.templating.TemplatedTask
            spec: |
              type: io.kestra.plugin.core.debug.Return
              pluginDefaultsRef: alive
          - id: typed
            type: io.kestra.plugin.core.templating.TemplatedTask
            spec: |
              type: io.kestra.plugin.core.log.Log
          - id: unknown
            type: io.kestra.plugin.core.templating.TemplatedTask
            spec: |
              type: io.kestra.plugin.core.debug.Return
              format: x
              pluginDefaultsRef: dead
        """)
    runs = {run.task_id: run for run in execution.task_runs}
    assert runs["named"].outputs == {"value": "It's alive!"}
    assert "typed default" in await h.logs(execution)
    assert runs["unknown"].state.current.value == "FAILED"
    assert any(
        "spec: pluginDefaultsRef: No plugin-defaults exists for pluginDefaultsRef: 'dead'" in line
        for line in await h.logs(execution)
    )
