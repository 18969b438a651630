"""Expression functions and variables that need the daemon: secrets, KV, files, logs, the
task runs' states, nested inputs, flow outputs and server globals.

Each test names the Kestra test or documentation page the behaviour comes from.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from daemon.config.settings import load_settings
from daemon.sdk.state import State
from tests.harness import Harness, task_states


def flow(tasks: str, extra: str = "") -> str:
    return f"id: f\nnamespace: company.team\n{extra}tasks:\n{tasks}"


def log(task_id: str, message: str) -> str:
    return (
        f"  - id: {task_id}\n    type: io.kestra.plugin.core.log.Log\n"
        f"    message: {json.dumps(message)}\n"
    )


async def logged(
    h: Harness, tasks: str, extra: str = "", state: State = State.SUCCESS, **inputs: object
) -> list[str]:
    ex = await h.run(flow(tasks, extra), inputs)
    assert ex.state.current == state, ex.error
    return await h.logs(ex)


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- secret() -------------------------------------------------------------------------------


async def test_secret_names_are_upper_cased_and_take_a_namespace_and_a_subkey(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kestra SecretFunction + SecretService: the key is looked up upper-cased
    (`secret('my_key')` reads SECRET_MY_KEY), `namespace` is a named argument (the environment
    backend serves every namespace), `subkey` picks a field of a JSON secret."""
    monkeypatch.setenv("SECRET_MY_KEY", encoded("v1"))
    monkeypatch.setenv("SECRET_DB", encoded('{"user": "ada", "port": 5432}'))
    lines = await logged(
        h,
        log("a", "{{ secret('my_key') == 'v1' }} {{ secret('MY_KEY', namespace='other') }}")
        + log("b", "{{ secret('db', subkey='user') }} {{ secret(key='db', subkey='port') }}"),
    )
    assert lines == ["true ******", "****** ******"]


async def test_a_missing_secret_or_subkey_fails_the_task_with_a_message(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kestra SecretFunction: a missing sub-key is "Cannot find secret sub-key"; a missing
    secret fails the task naming the variable to set — never a Python TypeError."""
    monkeypatch.setenv("SECRET_DB", encoded('{"user": "ada"}'))
    ex = await h.run(flow(log("a", "{{ secret('db', 'ns', 'nope') }}")))
    assert ex.state.current == State.FAILED
    assert "Cannot find secret sub-key 'nope' in secret 'db'." in (ex.error or "")
    ex = await h.run(flow(log("a", "{{ secret('absent') }}")))
    assert "secret 'absent' is not set (environment variable SECRET_ABSENT" in (ex.error or "")
    assert "TypeError" not in (ex.error or "")


# -- kv() -----------------------------------------------------------------------------------


async def test_kv_looks_in_parent_namespaces_unless_one_is_named(h: Harness) -> None:
    """Kestra KvFunction.getValueWithInheritance: without `namespace`, the flow's namespace
    then each parent; with one, only there (KvFunctionTest.getKeyNotFound's message)."""
    await h.store.kv.set("company", "region", "eu")
    lines = await logged(h, log("a", "{{ kv('region') }}"))
    assert lines == ["eu"]
    ex = await h.run(flow(log("a", "{{ kv('region', 'company.team') }}")))
    assert ex.state.current == State.FAILED
    assert "The key 'region' does not exist in the namespace 'company.team'." in (ex.error or "")
    lines = await logged(h, log("a", "{{ kv('nope', errorOnMissing=false) is null }}"))
    assert lines == ["true"]


# -- errorLogs(), tasksWithState() -------------------------------------------------------


async def test_error_logs_gives_the_error_lines_of_the_execution(h: Harness) -> None:
    """Kestra ErrorLogsFunctionTest.shouldReturnErrorsWhenExistsErrors: the ERROR lines of the
    execution (INFO left out), typically read in `errors`."""
    ex = await h.run(
        flow(
            log("fine", "all good")
            + "  - id: boom\n    type: io.kestra.plugin.core.execution.Fail\n"
            "    errorMessage: disk on fire\n",
            extra="errors:\n"
            + log("report", "{{ errorLogs() | length }} {{ errorLogs()[0].message }}"),
        )
    )
    assert ex.state.current == State.FAILED
    assert (await h.logs(ex))[-1] == "1 disk on fire"


async def test_error_logs_is_empty_without_errors(h: Harness) -> None:
    """Kestra ErrorLogsFunctionTest.shouldReturnNothingWhenNoErrors: `[]`."""
    assert await logged(h, log("a", "{{ errorLogs() }}")) == ["[]"]


async def test_tasks_with_state_reads_the_task_runs_so_far(h: Harness) -> None:
    """Kestra TasksWithStateFunctionTest (`tasks` variable of RunVariables): the task runs in
    a state, case-insensitive."""
    lines = await logged(
        h,
        "  - id: shaky\n    type: io.kestra.plugin.core.execution.Fail\n"
        "    allowFailure: true\n"
        + log("a", "{{ tasksWithState('warning') }} {{ tasks.shaky.state }}"),
        state=State.WARNING,
    )
    assert lines[-1] == '[{"taskId":"shaky","state":"WARNING"}] WARNING'


# -- ForEach outputs -------------------------------------------------------------------------


async def test_current_each_output_reads_the_current_iteration(h: Harness) -> None:
    """Kestra docs "ForEach" (currentEachOutput), CurrentEachOutputFunction: inside nested
    ForEach, the outputs of the task in the current iteration."""
    lines = await logged(
        h,
        """  - id: outer
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    tasks:
      - id: inner
        type: io.kestra.plugin.core.flow.ForEach
        values: [1, 2]
        tasks:
          - id: make
            type: io.kestra.plugin.core.debug.Return
            format: "{{ parent.taskrun.value }}{{ taskrun.value }}"
          - id: show
            type: io.kestra.plugin.core.log.Log
            message: "{{ currentEachOutput(outputs.make).value }}"
""",
    )
    assert sorted(lines) == ["a1", "a2", "b1", "b2"]


# -- files -------------------------------------------------------------------------------


async def namespace_file(h: Harness, namespace: str, path: str, content: str) -> None:
    """A namespace file, in the store where the functions read it."""

    async def chunks() -> AsyncIterator[bytes]:
        yield content.encode()

    await h.engine.store.namespace_files.write(namespace, path, chunks())


async def test_file_functions_read_stored_and_namespace_files(h: Harness) -> None:
    """Kestra FileSizeFunctionTest, FileExistsFunctionTest, IsFileEmptyFunctionTest and
    ReadFileFunctionTest: a `kestra:///` URI of the execution, a plain path or `nsfile://` URI
    of a namespace file (the flow's namespace, or the one named)."""
    await namespace_file(h, "company.team", "data/a.txt", "abc")
    await namespace_file(h, "other.ns", "b.txt", "")
    lines = await logged(
        h,
        """  - id: sh
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["*.txt"]
    commands:
      - printf hello > full.txt
      - ": > empty.txt"
"""
        + log(
            "stored",
            "{{ fileSize(outputs.sh.outputFiles['full.txt']) }} "
            "{{ isFileEmpty(outputs.sh.outputFiles['empty.txt']) }} "
            "{{ fileExists(outputs.sh.outputFiles['full.txt']) }} "
            "{{ read(outputs.sh.outputFiles['full.txt']) }}",
        )
        + log(
            "ns",
            "{{ read('data/a.txt') }} {{ fileSize(fileURI('data/a.txt')) }} "
            "{{ fileExists('nope.txt') }} {{ isFileEmpty('b.txt', namespace='other.ns') }} "
            "{{ fileExists('nsfile://other.ns/b.txt') }}",
        ),
    )
    assert lines[-2:] == ["5 true true hello", "abc 3 false true true"]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("{{ fileSize('s3://bucket/x') }}", "Cannot process the URI s3://bucket/x"),
        (
            "{{ read('kestra:///other/flow/executions/abc/inputs/f/x.txt') }}",
            "as it is not an execution file",
        ),
        ("{{ read('nsfile://other.ns/x', namespace='a') }}", "both as the function argument"),
        ("{{ isFileEmpty('missing.txt') }}", "isFileEmpty(): no file missing.txt"),
        ("{{ read('../../etc/passwd') }}", "is not a file of namespace company.team"),
        ("{{ fileSize() }}", "expects an argument 'path'"),
        # Kestra 2.0 renamed read()'s `version` to `revision` (PR #16699): both are known
        # arguments, and podium keeps no revisions of namespace files.
        ("{{ read('data/a.txt', revision=2) }}", "read(): namespace files are not kept by"),
        ("{{ read('data/a.txt', version=2) }}", "read(): namespace files are not kept by"),
    ],
)
async def test_file_functions_refuse_what_kestra_refuses(
    h: Harness, expression: str, message: str
) -> None:
    """Kestra AbstractFileFunction: unsupported schemes, other executions' non-task files,
    a namespace given twice, missing files and paths leaving the namespace are errors."""
    ex = await h.run(flow(log("a", expression)))
    assert ex.state.current == State.FAILED
    assert message in (ex.error or ""), ex.error


async def test_read_refuses_another_namespaces_execution_files_and_reads_its_own(
    h: Harness,
) -> None:
    """Issue #13 finding 10; Kestra AbstractFileFunction (checkAllowedFileAndReturnNamespace,
    FlowService.checkAllowedNamespace): another execution's task file is read only from its
    own namespace; a subflow reads only its parent's. ReadFileFunctionTest
    `readFailOnNonExecutionFile` for the message shape."""
    store_file = (
        "  - id: sh\n    type: io.kestra.plugin.scripts.shell.Commands\n"
        '    outputFiles: ["*.txt"]\n    commands:\n      - printf private > out.txt\n'
    )
    other = await h.run(f"id: maker\nnamespace: other.team\ntasks:\n{store_file}", {})
    same = await h.run(f"id: maker\nnamespace: company.team\ntasks:\n{store_file}", {})
    assert other.state.current == same.state.current == State.SUCCESS
    foreign = other.task_runs[0].outputs["outputFiles"]["out.txt"]
    neighbour = same.task_runs[0].outputs["outputFiles"]["out.txt"]

    refused = await h.run(flow(log("a", f"{{{{ read('{foreign}') }}}}")))
    assert refused.state.current == State.FAILED
    assert "namespace other.team is not allowed from namespace company.team" in (
        refused.error or ""
    ), refused.error
    assert await logged(h, log("a", f"{{{{ read('{neighbour}') }}}}")) == ["private"]


# -- variables ---------------------------------------------------------------------------


async def test_dotted_input_ids_nest(h: Harness) -> None:
    """Kestra RunVariables (nested inputs; Pause docs `request.name`): an input `user.name`
    is `inputs.user.name`, and `inputs.user` is a map."""
    inputs = "inputs:\n  - id: user.name\n    type: STRING\n  - id: user.age\n    type: INT\n"
    lines = await logged(
        h,
        log("a", "{{ inputs.user.name }} {{ inputs.user | toJson }}"),
        inputs,
        **{"user.name": "Ada", "user.age": "36"},
    )
    assert lines == ['Ada {"name":"Ada","age":36}']


async def test_after_execution_sees_the_flow_outputs_as_execution_outputs(h: Harness) -> None:
    """Kestra PR #10165 (RunVariables `execution.outputs`) and docs "afterExecution": the
    tasks after the execution see its final state and its flow outputs."""
    ex = await h.run(
        flow(
            "  - id: make\n    type: io.kestra.plugin.core.debug.Return\n    format: ok\n",
            extra="outputs:\n  - id: result\n    type: STRING\n"
            '    value: "{{ outputs.make.value }}"\nafterExecution:\n'
            + log("after", "{{ execution.state }} {{ execution.outputs.result }}"),
        )
    )
    assert ex.state.current == State.SUCCESS
    assert (await h.logs(ex))[-1] == "SUCCESS ok"
    assert task_states(ex)["after"] == "SUCCESS"


async def test_globals_are_server_wide_variables(h: Harness) -> None:
    """Kestra docs configuration "Variables" (`kestra.variables.globals`): every expression
    reads them as `globals.<name>`; without any, `globals` is an empty map."""
    assert await logged(h, log("a", "{{ globals | length }}")) == ["0"]
    h.engine.options.globals = {"region": "eu", "limits": {"rows": 10}}
    assert await logged(h, log("a", "{{ globals.region }} {{ globals.limits.rows }}")) == ["eu 10"]


def test_globals_setting_comes_from_the_file_or_the_environment(tmp_path: Path) -> None:
    """The `globals:` setting (podium.yaml) or PODIUM_GLOBALS (YAML or JSON text)."""
    config = tmp_path / "podium.yaml"
    config.write_text("globals:\n  region: eu\n  team:\n    name: data\n")
    settings = load_settings(config, {}, environ={})
    assert settings.globals == {"region": "eu", "team": {"name": "data"}}
    settings = load_settings(None, {}, environ={"PODIUM_GLOBALS": '{"region": "us"}'})
    assert settings.globals == {"region": "us"}


def test_podium_run_reads_globals_from_the_environment(tmp_path: Path) -> None:
    """`podium run` gives flows the same `globals` as `podium serve` (PODIUM_GLOBALS)."""
    import os
    import subprocess
    import sys

    flow_file = tmp_path / "g.yaml"
    flow_file.write_text(
        "id: g\nnamespace: ns\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n"
        '    message: "{{ globals.region }}"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "daemon", "run", str(flow_file), "--json",
         "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PODIUM_GLOBALS": '{"region": "eu"}'},
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [line["message"] for line in json.loads(result.stdout)["logs"]] == ["eu"]
