"""`podium run` imports only the plug-in modules its flow uses, from an index of a previous
full load that is rebuilt whenever what is installed changes (issue #18: start-up, "pydantic
models of plug-ins not used by the flow being run")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from daemon.flows import plugin_index
from daemon.flows.registry import (
    Plugins,
    UnknownType,
    default_plugins,
    run_plugins,
    serve_plugins,
)

PROBE = textwrap.dedent(
    """
    import json, sys
    from daemon.flows.loader import load_flow
    from daemon.flows.registry import run_plugins

    plugins = run_plugins()
    load_flow(sys.stdin.read(), "probe.yaml", plugins)
    print(json.dumps(sorted(m for m in sys.modules if m.startswith(("tasks.", "triggers.")))))
    """
)
FLOW = """\
id: probe
namespace: test
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: hi
"""


def imported_plugin_modules(cache: Path, flow: str = FLOW) -> list[str]:
    """The plug-in modules a fresh process imports to load `flow` with `run_plugins()`."""
    env = {**os.environ, "PODIUM_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], input=flow, capture_output=True, text=True, env=env,
        timeout=120, check=True,
    )  # fmt: skip
    return list(json.loads(done.stdout))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PODIUM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_second_run_imports_only_the_plugin_modules_its_flow_uses(cache: Path) -> None:
    first = imported_plugin_modules(cache)
    assert "tasks.sql.duckdb" in first and "triggers.mqtt" in first  # the full load
    assert (cache / "plugins.json").is_file()
    second = imported_plugin_modules(cache)
    assert "tasks.core" in second
    assert "tasks.sql.duckdb" not in second and "triggers.mqtt" not in second
    assert len(second) < len(first) / 4


def test_an_index_from_other_installed_plugins_is_not_used(cache: Path) -> None:
    imported_plugin_modules(cache)
    index = cache / "plugins.json"
    doc = json.loads(index.read_text())
    doc["fingerprint"] = "something else was installed"
    doc["types"]["task"] = {"io.kestra.plugin.core.log.Log": "tasks.nowhere"}
    index.write_text(json.dumps(doc))
    assert "tasks.sql.duckdb" in imported_plugin_modules(cache)  # loaded in full again
    assert json.loads(index.read_text())["fingerprint"] != "something else was installed"


@pytest.mark.parametrize(
    "text", ["", "{not json", '{"version": 1}', '["a"]', '{"version": 99}', '{"version": 2}']
)
def test_a_damaged_index_is_rebuilt_not_an_error(cache: Path, text: str) -> None:
    cache.mkdir()
    (cache / "plugins.json").write_text(text)
    assert "tasks.core" in imported_plugin_modules(cache)
    assert json.loads((cache / "plugins.json").read_text())["version"] == plugin_index.VERSION


def test_an_unwritable_cache_only_costs_speed(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory would be")
    assert "tasks.core" in imported_plugin_modules(blocker / "cache")


def test_lazy_plugins_know_every_name_and_class_an_eager_load_knows(cache: Path) -> None:
    eager = default_plugins()
    lazy = Plugins.from_index(*eager.index())
    for kind in ("tasks", "triggers", "conditions"):
        assert getattr(lazy, kind).names() == getattr(eager, kind).names()
    assert "io.kestra.plugin.scripts.shell.Commands" in lazy.tasks
    assert lazy.tasks.get("io.kestra.core.tasks.log.Log") is eager.tasks.get(
        "io.kestra.plugin.core.log.Log"
    )
    assert [c.types[0] for c in lazy.triggers.classes()] == [
        c.types[0] for c in eager.triggers.classes()
    ]


def test_an_unknown_type_gets_the_same_suggestions_lazily(cache: Path) -> None:
    eager = default_plugins()
    lazy = Plugins.from_index(*eager.index())
    with pytest.raises(UnknownType) as lazily:
        lazy.tasks.get("io.kestra.plugin.core.log.Lgo")
    with pytest.raises(UnknownType) as eagerly:
        eager.tasks.get("io.kestra.plugin.core.log.Lgo")
    assert str(lazily.value) == str(eagerly.value)
    assert "io.kestra.plugin.core.log.Log" in str(lazily.value)


def test_a_module_of_the_index_that_no_longer_imports_is_reported(cache: Path) -> None:
    eager = default_plugins()
    types, canonical, hooks = eager.index()
    types["task"]["io.example.Gone"] = "tasks.no_such_module"
    lazy = Plugins.from_index(types, canonical, hooks)
    with pytest.raises(UnknownType, match=r"io\.example\.Gone"):
        lazy.tasks.get("io.example.Gone")
    assert "tasks.no_such_module" in lazy.failed


def test_run_plugins_in_process_reuses_the_index(cache: Path) -> None:
    first = run_plugins()
    assert (cache / "plugins.json").is_file()
    second = run_plugins()
    assert second is not first
    assert second.tasks.get("io.kestra.plugin.core.debug.Return").types[0] == (
        "io.kestra.plugin.core.debug.Return"
    )


SERVE_PROBE = textwrap.dedent(
    """
    import json, sys
    from daemon.flows.registry import serve_plugins

    plugins = serve_plugins()
    hooks = sorted(hook.__module__ for hook in plugins.startup_hooks)
    modules = sorted(m for m in sys.modules if m.startswith(("tasks.", "triggers.")))
    print(json.dumps({"hooks": hooks, "modules": modules}))
    """
)


def serve_start(cache: Path) -> dict[str, list[str]]:
    env = {**os.environ, "PODIUM_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", SERVE_PROBE], capture_output=True, text=True, env=env,
        timeout=120, check=True,
    )  # fmt: skip
    return dict(json.loads(done.stdout))


def test_serve_imports_the_modules_with_start_up_hooks_and_not_the_others(cache: Path) -> None:
    """`podium serve` loads a flow's types as the flow loads; the crash clean-up hooks of
    plug-in modules (`on_daemon_start`: script process groups a killed daemon left) run
    at every start whatever the flows use, so their modules are imported at once."""
    eager = default_plugins()
    expected_hooks = sorted(hook.__module__ for hook in eager.startup_hooks)
    assert "tasks.scripts.process" in expected_hooks
    first = serve_start(cache)  # no index yet: everything, and the index is written
    assert first["hooks"] == expected_hooks
    assert "tasks.sql.duckdb" in first["modules"]
    second = serve_start(cache)
    assert second["hooks"] == expected_hooks
    assert "tasks.sql.duckdb" not in second["modules"]
    assert "triggers.mqtt" not in second["modules"]


def test_serve_plugins_in_process_registers_each_hook_once(cache: Path) -> None:
    serve_plugins()  # writes the index
    plugins = serve_plugins()
    plugins.import_hooks()  # again: nothing more
    hooks = [hook.__module__ for hook in plugins.startup_hooks]
    assert hooks and len(hooks) == len(set(hooks))
    assert plugins.tasks.get("io.kestra.plugin.scripts.shell.Commands").types
    assert [hook.__module__ for hook in plugins.startup_hooks] == hooks


RUN_PROBE = textwrap.dedent(
    """
    import json, sys
    from daemon.app.cli import main

    code = main(["run", sys.argv[1], "--data-dir", sys.argv[2]])
    print(json.dumps({"code": code, "jinja2": "jinja2" in sys.modules}))
    """
)


@pytest.mark.parametrize(
    ("message", "renders"), [("hi", False), ("{{ 1 + 1 }}", True), ("a { brace", False)]
)
def test_podium_run_of_a_flow_without_expressions_never_imports_jinja(
    cache: Path, tmp_path: Path, message: str, renders: bool
) -> None:
    """Issue #18, start-up: Jinja (~40 ms and ~4 MB) is imported by the first render and
    by the load-time syntax check of a property that could hold a tag, never otherwise."""
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW.replace("message: hi", f'message: "{message}"'))
    env = {**os.environ, "PODIUM_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", RUN_PROBE, str(flow), str(tmp_path / "data")],
        capture_output=True, text=True, env=env, timeout=120, check=True,
    )  # fmt: skip
    last = json.loads(done.stdout.strip().splitlines()[-1])
    assert last == {"code": 0, "jinja2": renders}, done.stdout + done.stderr


def _fake_distribution(site: Path, version: str) -> list[plugin_index.metadata.EntryPoint]:
    """A plug-in distribution installed under `site`, naming podium's own core module."""
    info = site / "podium_fake_plugin-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: podium-fake-plugin\nVersion: {version}\n\n"
        "A long description, as a README makes it.\n" * 3
    )
    (info / "entry_points.txt").write_text("[podium.plugins]\nfake = tasks.core\n")
    (dist,) = plugin_index.metadata.distributions(path=[str(site)])
    return list(dist.entry_points)


def test_the_fingerprint_changes_with_a_plugins_version(tmp_path: Path) -> None:
    """An upgraded plug-in (same module files, another version) means a full load."""
    first = plugin_index.fingerprint(_fake_distribution(tmp_path, "1.0"))
    again = plugin_index.fingerprint(_fake_distribution(tmp_path, "1.0"))
    upgraded = plugin_index.fingerprint(_fake_distribution(tmp_path, "1.1"))
    assert first is not None and first == again
    assert upgraded is not None and upgraded != first
