"""Plug-ins are found through the `podium.plugins` entry-point group, so a package installed
apart from podium adds task and trigger types with no change to podium (issue #12)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from daemon.flows.registry import GROUP, default_plugins, plugin_entry_points

PLUGIN_PACKAGE = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=77"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "podium-plugin-shout"
        version = "0.1.0"

        [project.entry-points."podium.plugins"]
        shout = "podium_shout"

        [tool.setuptools]
        packages = ["podium_shout"]
    """,
    "podium_shout/__init__.py": '''
        """A third-party plug-in: it imports podium's SDK and nothing else of podium."""
        from typing import Annotated

        from daemon.sdk import Dynamic, Output, RunContext, Task


        class Shout(Task):
            types = ("io.example.shout.Shout",)

            text: Annotated[str, Dynamic]

            async def run(self, ctx: RunContext) -> Output:
                ctx.logger.info(f"shouting {self.text}")
                return {"value": self.text.upper() + "!"}
    ''',
}

FLOW = """
id: shouting
namespace: plugins.test
inputs:
  - id: who
    type: STRING
tasks:
  - id: shout
    type: io.example.shout.Shout
    text: "hello {{ inputs.who }}"
outputs:
  - id: said
    type: STRING
    value: "{{ outputs.shout.value }}"
"""


def install_plugin(tmp_path: Path) -> Path:
    """Build and install the package from its source directory into a directory of its own
    (as `pip install --target` does), offline; returns that site directory."""
    source = tmp_path / "podium-plugin-shout"
    for name, text in PLUGIN_PACKAGE.items():
        path = source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(site), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (site / "podium_shout" / "__init__.py").is_file()
    return site


def podium_run(tmp_path: Path, site: Path | None) -> subprocess.CompletedProcess[str]:
    flow = tmp_path / "shouting.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    podium = Path(sys.executable).with_name("podium")
    return subprocess.run(
        [str(podium), "run", str(flow), "-i", "who=world", "--json",
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


async def test_a_separately_installed_plugin_package_adds_a_task_type(tmp_path: Path) -> None:
    site = await asyncio.to_thread(install_plugin, tmp_path)
    done = await asyncio.to_thread(podium_run, tmp_path, site)
    assert done.returncode == 0, done.stderr
    execution = json.loads(done.stdout)
    assert execution["state"]["current"] == "SUCCESS"
    assert execution["outputs"] == {"said": "HELLO WORLD!"}
    assert [line["message"] for line in execution["logs"]] == ["shouting hello world"]


async def test_without_the_plugin_package_its_type_is_an_unknown_type(tmp_path: Path) -> None:
    done = await asyncio.to_thread(podium_run, tmp_path, None)
    assert done.returncode == 2
    assert "shouting.yaml:9:11: tasks[0].type: unknown task type 'io.example.shout.Shout'" in (
        done.stderr
    )


def test_podiums_own_plugins_come_from_its_entry_points() -> None:
    """The built-in types are registered by podium's own distribution, like any other."""
    entries = [e for e in plugin_entry_points() if e.dist is not None]
    assert entries and {e.dist.name for e in entries if e.dist} >= {"podium"}
    assert {e.value for e in entries} >= {"tasks.core", "triggers.webhook"}
    plugins = default_plugins()
    assert plugins.tasks.get("io.kestra.plugin.core.log.Log").__module__ == "tasks.core"
    assert plugins.failed == {}
    assert GROUP == "podium.plugins"
