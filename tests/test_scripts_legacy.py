"""Kestra's 0.x script tasks, `io.kestra.core.tasks.scripts.Bash` and `.Python`, as older
flows and blueprints still write them.

Behaviour from Kestra's core/src/main/java/io/kestra/core/tasks/scripts/ (AbstractBash,
BashService, AbstractPython, Python) and their @Example blocks: named `outputFiles` whose
paths the commands use as `{{ outputFiles.first }}`, `inputFiles` rendered with
`{{ workingDir }}`, `set -o errexit` unless `exitOnFailed: false`, `interpreter` and
`interpreterArgs`, outputs `exitCode`/`stdOutLineCount`/`stdErrLineCount`/`vars`/
`outputFiles`/`files`, and Python's `main.py` run with `args`.
"""

from __future__ import annotations

import pytest

from daemon.flows.deprecations import deprecations
from daemon.flows.loader import load_flow
from daemon.sdk.errors import FlowError
from daemon.sdk.state import State
from tasks.scripts.docker import Docker
from tasks.scripts.legacy import Bash, Python
from tests.harness import Harness
from tests.test_scripts import flow, messages

BASH = "io.kestra.core.tasks.scripts.Bash"
PYTHON = "io.kestra.core.tasks.scripts.Python"


async def test_named_output_files_are_filled_by_the_commands_and_stored(h: Harness) -> None:
    """Kestra's Bash @Example "Bash command that generate file in storage accessible through
    outputs", with the deprecated `temp` name of the same paths."""
    ex = await h.run(
        flow(
            f"""
        - id: bash
          type: {BASH}
          outputFiles:
            - first
            - second
          commands:
            - echo "1" >> {{{{ outputFiles.first }}}}
            - echo "2" >> {{{{ temp.second }}}}
            - echo "done {{{{ flow.id }}}}"
        """,
            """
        - id: read
          type: io.kestra.plugin.core.log.Log
          message: >-
            {{ read(outputs.bash.outputFiles.first) | trim }}-{{
            read(outputs.bash.files.second) | trim }}
        """,
        )
    )
    assert ex.state.current == State.SUCCESS, ex.error
    outputs = ex.task_runs[0].outputs or {}
    assert set(outputs["outputFiles"]) == {"first", "second"}
    assert outputs["files"] == outputs["outputFiles"]
    assert all(uri.startswith("kestra://") for uri in outputs["outputFiles"].values())
    assert (outputs["exitCode"], outputs["stdOutLineCount"], outputs["stdErrLineCount"]) == (
        0,
        1,
        0,
    )
    assert ("INFO", "done f") in await messages(h, ex)
    assert ("INFO", "1-2") in await messages(h, ex)


async def test_input_files_are_rendered_with_the_working_dir_and_vars_come_back(
    h: Harness,
) -> None:
    """Kestra's Bash @Example "Bash with some inputs files" (`echo {{ workingDir }}` in
    script.sh) and the `::{"outputs": ...}::` protocol of AbstractBash's LogThread."""
    ex = await h.run(
        flow(f"""
        - id: bash
          type: {BASH}
          inputFiles:
            script.sh: |
              echo "dir {{{{ workingDir }}}}"
              echo '::{{"outputs": {{"answer": 42}}}}::'
          commands:
            - /bin/sh script.sh
            - test "$PWD" = "{{{{ workingDir }}}}" && echo same
        """)
    )
    assert ex.state.current == State.SUCCESS, ex.error
    logged = [m for _, m in await messages(h, ex)]
    assert logged[0].startswith("dir /") and logged[-1] == "same"
    assert (ex.task_runs[0].outputs or {})["vars"] == {"answer": 42}


async def test_exit_on_failed_stops_at_the_first_failing_command(h: Harness) -> None:
    """AbstractBash's `exitOnFailed` (default true): `set -o errexit` before the commands."""
    stopped = await h.run(flow(f"- id: bash\n  type: {BASH}\n  commands: ['false', echo after]\n"))
    assert stopped.state.current == State.FAILED
    assert ("INFO", "after") not in await messages(h, stopped)
    went_on = await h.run(
        flow(f"""
        - id: bash
          type: {BASH}
          exitOnFailed: false
          commands: ['false', echo went on]
        """)
    )
    assert went_on.state.current == State.SUCCESS, went_on.error
    assert ("INFO", "went on") in await messages(h, went_on)


async def test_interpreter_and_its_args(h: Harness) -> None:
    ex = await h.run(
        flow(f"""
        - id: bash
          type: {BASH}
          interpreter: /bin/bash
          interpreterArgs: ["-c"]
          commands:
            - 'words=(a b c); echo "${{#words[@]}} words"'
        """)
    )
    assert ex.state.current == State.SUCCESS, ex.error
    assert await messages(h, ex) == [("INFO", "3 words")]


async def test_a_failing_command_fails_the_task_with_its_code(h: Harness) -> None:
    ex = await h.run(flow(f"- id: bash\n  type: {BASH}\n  commands: ['echo oops >&2; exit 3']\n"))
    assert ex.state.current == State.FAILED
    assert ex.error == "task 'bash': command failed with exit code 3; last lines of stderr:\noops"


async def test_python_runs_main_py_with_args_and_kestra_outputs(h: Harness) -> None:
    """Kestra's Python @Example: `main.py` and `data.json` in inputFiles, `args`, and
    `Kestra.outputs` from the `kestra` module the task provides."""
    ex = await h.run(
        flow(f"""
        - id: py
          type: {PYTHON}
          args:
            - data.json
            - "{{{{ flow.id }}}}"
          inputFiles:
            data.json: '{{"status": "OK"}}'
            main.py: |
              import json, sys
              from kestra import Kestra
              result = json.loads(open(sys.argv[1]).read())
              print(f"python script {{result['status']}} {{sys.argv[2]}}")
              Kestra.outputs({{'status': result['status']}})
        """)
    )
    assert ex.state.current == State.SUCCESS, ex.error
    assert await messages(h, ex) == [("INFO", "python script OK f")]
    assert (ex.task_runs[0].outputs or {})["vars"] == {"status": "OK"}


def test_python_needs_main_py_unless_it_has_commands() -> None:
    with pytest.raises(FlowError, match=r"main\.py"):
        load_flow(flow(f"- id: py\n  type: {PYTHON}\n  inputFiles:\n    other.py: x = 1\n"))
    loaded = load_flow(
        flow(f"- id: py\n  type: {PYTHON}\n  commands: ['./bin/python -c \"print(1)\"']\n")
    )
    assert isinstance(loaded.tasks[0], Python)


def test_requirements_are_the_environments_dependencies() -> None:
    loaded = load_flow(
        flow(
            f"- id: py\n  type: {PYTHON}\n  requirements: [requests, pandas==2.2.0]\n"
            "  inputFiles:\n    main.py: print(1)\n"
        )
    )
    task = loaded.tasks[0]
    assert isinstance(task, Python)
    assert task.job_options()["dependencies"] == ["requests", "pandas==2.2.0"]


def test_runner_docker_with_docker_options_is_the_docker_task_runner() -> None:
    loaded = load_flow(
        flow(f"""
        - id: bash
          type: {BASH}
          runner: DOCKER
          dockerOptions:
            image: ubuntu:22.04
            dockerHost: unix:///run/podman.sock
            networkMode: host
          commands: [echo hi]
        """)
    )
    task = loaded.tasks[0]
    assert isinstance(task, Bash)
    assert isinstance(task.task_runner, Docker)
    assert (task.container_image, task.task_runner.host, task.task_runner.network_mode) == (
        "ubuntu:22.04",
        "unix:///run/podman.sock",
        "host",
    )


def test_the_types_load_with_a_deprecation_warning() -> None:
    loaded = load_flow(flow(f"- id: bash\n  type: {BASH}\n  commands: [echo hi]\n"))
    assert any(f"type '{BASH}' is deprecated" in text for _, text in deprecations(loaded))


@pytest.mark.parametrize(
    ("task", "problem"),
    [
        (f"- id: bash\n  type: {BASH}\n  commands: []\n", "commands"),
        (f"- id: bash\n  type: {BASH}\n", "commands"),
        (f"- id: bash\n  type: {BASH}\n  commands: [echo]\n  exitOnFailed: maybe\n", "fail"),
        (f"- id: bash\n  type: {BASH}\n  commands: [echo]\n  outputFile: [x]\n", "outputFile"),
    ],
)
def test_malformed_tasks_are_refused_when_the_flow_loads(task: str, problem: str) -> None:
    with pytest.raises(FlowError, match=problem):
        load_flow(flow(task))


async def test_an_output_file_outside_the_working_dir_is_refused(h: Harness) -> None:
    ex = await h.run(
        flow(f"- id: bash\n  type: {BASH}\n  outputFiles: ['../x']\n  commands: [echo hi]\n")
    )
    assert ex.state.current == State.FAILED
    assert ex.error == "task 'bash': outputFiles: only a relative name is allowed, not '../x'"
