"""Script tasks under the Process runner: files in and out, streaming logs, Kestra's output
protocol, failures, timeouts and kills, and the cached virtual environments."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import os
import sys
import textwrap
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from daemon.engine.events import Event, ExecutionChanged, LogAppended
from daemon.flows.loader import load_flow
from daemon.sdk.errors import FlowError
from daemon.sdk.execution import Execution, TaskRun
from daemon.sdk.state import State
from tasks.scripts.base import glob_regex
from tasks.scripts.protocol import ProtocolError, parse
from tasks.scripts.runner import LineSplitter
from tests.harness import Harness

FLOWS = Path(__file__).resolve().parent.parent / "flows"
# The test's own virtualenv has the real `kestra` package; a task whose PATH starts here
# runs `python` with it, without installing anything.
VENV_PATH = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def flow(*tasks: str, inputs: str = "") -> str:
    """A flow of the given task YAML blocks (each written at column 0)."""
    body = "".join(textwrap.indent(textwrap.dedent(t).strip("\n"), "  ") + "\n" for t in tasks)
    return f"id: f\nnamespace: ns\n{inputs}tasks:\n{body}"


def shell(*commands: str, task_id: str = "sh", extra: str = "") -> str:
    lines = "".join(f"  - {json.dumps(c)}\n" for c in commands)
    block = textwrap.dedent(extra).strip("\n")
    properties = textwrap.indent(block + "\n", "  ") if block else ""
    return (
        f"- id: {task_id}\n  type: io.kestra.plugin.scripts.shell.Commands\n"
        f"{properties}  commands:\n{lines}"
    )


async def messages(h: Harness, ex: Execution) -> list[tuple[str, str]]:
    await h.store.flush()
    return [(line["level"], line["message"]) for line in await h.store.logs(ex.id)]


def processes_with(marker: str) -> list[str]:
    """Command lines of live processes mentioning `marker` (zombies have none)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


# -- running commands and scripts -------------------------------------------------------


async def test_commands_are_rendered_and_run_after_before_commands_with_env(h: Harness) -> None:
    ex = await h.run(
        flow(
            shell(
                'echo "main $GREETING {{ inputs.who }} $PORT"',
                extra="""
                                beforeCommands:
                                  - echo before
                                env:
                                  GREETING: "hello {{ inputs.who }}"
                                  PORT: 8080
                                """,
            ),
            inputs="inputs:\n  - id: who\n    type: STRING\n",
        ),
        {"who": "Ada"},
    )
    assert ex.state.current == State.SUCCESS
    assert await messages(h, ex) == [("INFO", "before"), ("INFO", "main hello Ada Ada 8080")]
    assert ex.task_runs[0].outputs == {
        "vars": {},
        "exitCode": 0,
        "stdOutLineCount": 2,
        "stdErrLineCount": 0,
    }


async def test_stdout_is_info_and_stderr_is_warn(h: Harness) -> None:
    ex = await h.run(flow(shell("echo to-out", "echo to-err >&2", extra="warningOnStdErr: false")))
    assert ex.state.current == State.SUCCESS
    assert await messages(h, ex) == [("INFO", "to-out"), ("WARN", "to-err")]


async def test_interpreter_runs_the_commands(h: Harness) -> None:
    ex = await h.run(
        flow(
            shell(
                'words=(a b c); echo "${#words[@]} words"',
                extra='interpreter: ["/bin/bash", "-c"]\n',
            )
        )
    )
    assert ex.state.current == State.SUCCESS
    assert await messages(h, ex) == [("INFO", "3 words")]


async def test_shell_script_runs_as_a_file_with_the_interpreters_shell(h: Harness) -> None:
    ex = await h.run(
        flow("""
        - id: script
          type: io.kestra.plugin.scripts.shell.Script
          interpreter: ["/bin/bash", "-c"]
          script: |
            name="{{ flow.id }}"
            echo "$0 runs ${name^^}"
        """)
    )
    assert ex.state.current == State.SUCCESS
    assert await messages(h, ex) == [("INFO", ".script.sh runs F")]


async def test_python_script_and_commands_run_with_python(h: Harness) -> None:
    ex = await h.run(
        flow(
            """
        - id: script
          type: io.kestra.plugin.scripts.python.Script
          script: |
            import os
            print("sum", sum(range({{ 4 }})), os.getcwd() == "{{ workingDir }}")
        """,
            """
        - id: commands
          type: io.kestra.plugin.scripts.python.Commands
          inputFiles:
            main.py: print("from main.py")
          commands:
            - python main.py
        """,
        )
    )
    assert ex.state.current == State.SUCCESS
    assert await messages(h, ex) == [("INFO", "sum 6 True"), ("INFO", "from main.py")]


async def test_fail_fast_stops_at_the_first_failing_command(h: Harness) -> None:
    ex = await h.run(flow(shell("false", "echo not reached")))
    assert ex.state.current == State.FAILED
    assert ("INFO", "not reached") not in await messages(h, ex)


async def test_without_fail_fast_the_last_command_decides(h: Harness) -> None:
    ex = await h.run(flow(shell("false", "echo reached", extra="failFast: false")))
    assert ex.state.current == State.SUCCESS
    assert await messages(h, ex) == [("INFO", "reached")]


@pytest.mark.parametrize("target_os", ["AUTO", "LINUX", "{{ 'LIN' ~ 'UX' }}"])
async def test_target_os_linux_or_auto_joins_lines_with_lf_and_fails_fast(
    h: Harness, target_os: str
) -> None:
    """Kestra's AbstractExecScript.targetOS (default AUTO) with ScriptService.scriptCommands
    joining beforeCommands and commands with the target's line separator (LF on Linux) and
    CommandsWrapper adding `set -e` for failFast unless the target is Windows: a CR would
    show inside the brackets; the failing command stops the rest."""
    ex = await h.run(
        flow(
            shell(
                "B=2",
                'echo "[$A$B]"',
                task_id="joined",
                extra=f'beforeCommands: ["A=1"]\ntargetOS: "{target_os}"\n',
            ),
            shell("false", "echo not reached", task_id="fast", extra=f'targetOS: "{target_os}"\n'),
        )
    )
    runs = {tr.task_id: tr for tr in ex.task_runs}
    assert runs["joined"].state.current == State.SUCCESS
    assert runs["fast"].state.current == State.FAILED
    assert [m for _, m in await messages(h, ex) if m.startswith("[")] == ["[12]"]
    assert ("INFO", "not reached") not in await messages(h, ex)


async def test_target_os_windows_is_refused_before_anything_runs(h: Harness) -> None:
    """targetOS WINDOWS means CRLF between commands and no `set -e` in Kestra, for a Windows
    worker; podium runs scripts on Linux only, so the task fails saying so, unretried."""
    ex = await h.run(
        flow(
            """
        - id: win
          type: io.kestra.plugin.scripts.python.Script
          targetOS: WINDOWS
          retry: {type: constant, interval: PT0S, maxAttempts: 3}
          script: print("ran")
        """
        )
    )
    run = ex.task_runs[0]
    assert run.state.current == State.FAILED
    assert len(run.attempts) == 1
    logs = [m for _, m in await messages(h, ex)]
    assert "ran" not in logs
    assert any("targetOS WINDOWS: podium runs scripts on Linux only" in m for m in logs)


def test_target_os_is_accepted_on_the_script_tasks_and_checked() -> None:
    """Every task Kestra bases on AbstractExecScript takes targetOS (shell and python
    Commands/Script, dbt's DbtCLI); a value outside AUTO/LINUX/WINDOWS is a load error."""
    for task_type, body in [
        ("io.kestra.plugin.scripts.shell.Script", "script: echo hi"),
        ("io.kestra.plugin.scripts.python.Commands", "commands: [python x.py]"),
        ("io.kestra.plugin.scripts.python.Script", "script: print(1)"),
        ("io.kestra.plugin.dbt.cli.DbtCLI", "commands: [dbt build]"),
    ]:
        loaded = load_flow(
            flow(f"- id: t\n  type: {task_type}\n  targetOS: LINUX\n  {body}\n"), "f.yaml"
        )
        assert loaded.tasks[0].target_os == "LINUX"  # type: ignore[attr-defined]
    with pytest.raises(FlowError) as info:
        load_flow(flow(shell("true", extra="targetOS: MACOS\n")), "f.yaml")
    assert "targetOS" in str(info.value)


async def test_lines_reach_the_logs_while_the_script_still_runs(h: Harness) -> None:
    """The script waits for a file that the test creates only once it has seen the first
    line in the logs: had lines been collected at the end, this would never finish."""
    seen: asyncio.Future[TaskRun] = asyncio.get_running_loop().create_future()

    def listener(event: Event) -> None:
        if (
            isinstance(event, LogAppended)
            and event.line["message"] == "waiting for go"
            and not seen.done()
        ):
            assert event.task_run is not None
            seen.set_result(event.task_run)

    unsubscribe = h.engine.subscribe(listener)
    try:
        ex = await h.start(
            flow(
                shell("echo waiting for go", "while [ ! -f go ]; do sleep 0.02; done", "echo went")
            )
        )
        tr = await asyncio.wait_for(seen, 20)
        go = h.engine.data_dir / "tmp" / ex.id / tr.id / "go"
        await asyncio.to_thread(go.touch)
        ex = await asyncio.wait_for(h.engine.wait(ex.id), 20)
    finally:
        unsubscribe()
    assert ex.state.current == State.SUCCESS
    assert await messages(h, ex) == [("INFO", "waiting for go"), ("INFO", "went")]


async def test_ten_thousand_lines_all_reach_the_logs_in_order(h: Harness) -> None:
    ex = await h.run(flow(shell("seq 1 10000", "seq 1 10000 >&2", extra="warningOnStdErr: false")))
    assert ex.state.current == State.SUCCESS
    logs = await messages(h, ex)
    assert [m for level, m in logs if level == "INFO"] == [str(i) for i in range(1, 10001)]
    assert [m for level, m in logs if level == "WARN"] == [str(i) for i in range(1, 10001)]
    assert ex.task_runs[0].outputs["stdOutLineCount"] == 10000


async def test_a_very_long_line_is_split_not_lost(h: Harness) -> None:
    ex = await h.run(
        flow("""
        - id: long
          type: io.kestra.plugin.scripts.python.Script
          script: |
            import sys
            sys.stdout.write("é" * 1_500_000 + "\\nend\\n")
        """)
    )
    assert ex.state.current == State.SUCCESS
    logs = [m for _, m in await messages(h, ex)]
    assert len(logs) > 2
    assert "".join(logs[:-1]) == "é" * 1_500_000
    assert logs[-1] == "end"
    assert all(len(m.encode()) <= 1024 * 1024 for m in logs)


def test_line_splitter_cuts_on_character_boundaries_and_keeps_the_last_line() -> None:
    splitter = LineSplitter(max_bytes=5)
    assert splitter.feed(b"ab\r\ncd") == ["ab"]
    assert splitter.feed("eéé".encode()) == ["cdeé"]  # 'é' is two bytes: cut before it
    assert splitter.feed(b"\xff\n") == ["é\ufffd"]
    assert splitter.feed(b"tail") == []
    assert splitter.close() == ["tail"]
    assert splitter.close() == []


# -- failures, timeouts, kills ----------------------------------------------------------


async def test_exit_code_fails_the_task_with_the_last_lines_of_stderr(h: Harness) -> None:
    ex = await h.run(
        flow(
            shell(
                "echo fine",
                "echo 'first problem' >&2",
                "echo 'second problem' >&2",
                "exit 3",
                task_id="fail",
            )
        )
    )
    assert ex.state.current == State.FAILED
    error = "command failed with exit code 3; last lines of stderr:\nfirst problem\nsecond problem"
    assert ex.error == f"task 'fail': {error}"
    assert (await messages(h, ex))[-1] == ("ERROR", error)


async def test_only_the_last_ten_stderr_lines_are_quoted(h: Harness) -> None:
    ex = await h.run(flow(shell("seq 1 25 >&2", "exit 1", task_id="fail")))
    assert ex.error == (
        "task 'fail': command failed with exit code 1; last lines of stderr:\n"
        + "\n".join(str(i) for i in range(16, 26))
    )


async def test_exit_code_without_stderr_says_so(h: Harness) -> None:
    ex = await h.run(flow(shell("exit 7", task_id="fail")))
    assert ex.error == "task 'fail': command failed with exit code 7 (nothing on stderr)"


async def test_a_missing_interpreter_fails_with_its_name(h: Harness) -> None:
    ex = await h.run(
        flow(shell("true", task_id="fail", extra='interpreter: ["/no/such/shell", "-c"]\n'))
    )
    assert ex.error == "task 'fail': cannot start '/no/such/shell': No such file or directory"


async def test_never_ending_script_times_out_and_leaves_no_process(h: Harness) -> None:
    marker = f"1{uuid.uuid4().int % 10**8:08d}"  # a sleep length that names these processes
    ex = await h.run(
        flow(
            shell(
                f"sh -c 'trap \"\" TERM; sleep {marker}' &",  # a child that ignores SIGTERM
                f"sleep {marker}",
                task_id="forever",
                extra="timeout: PT2S",
            )
        )
    )
    assert ex.state.current == State.FAILED
    assert ex.error == "task 'forever': timed out after PT2S"
    assert await asyncio.to_thread(processes_with, marker) == []


async def test_killing_the_execution_kills_the_process_group(h: Harness) -> None:
    marker = f"2{uuid.uuid4().int % 10**8:08d}"
    started = asyncio.Event()

    def listener(event: Event) -> None:
        if isinstance(event, LogAppended) and event.line["message"] == "started":
            started.set()

    unsubscribe = h.engine.subscribe(listener)
    try:
        ex = await h.start(
            flow(shell(f"sleep {marker} &", f"sh -c 'sleep {marker}' &", "echo started", "wait"))
        )
        await asyncio.wait_for(started.wait(), 20)
        assert len(await asyncio.to_thread(processes_with, marker)) >= 2
        assert await h.engine.kill(ex.id)
    finally:
        unsubscribe()
    ex = await h.engine.wait(ex.id)
    assert ex.state.current == State.KILLED
    assert ex.task_runs[0].state.current == State.KILLED
    assert await asyncio.to_thread(processes_with, marker) == []


async def test_a_kill_landing_as_the_command_starts_stops_it_at_once(h: Harness) -> None:
    """A kill landing while the shell was being started (asyncio's subprocess_exec still
    awaited) stopped the shell alone, then waited for the pipes its `sleep` child kept
    open: killing Kestra's flow-concurrency-queue-duration.yml (`sleep 30`) just after it
    started took 30 seconds. The window is narrow, so kills land at many points of the
    start; each must end the whole group at once (bounded wait: the command never ends)."""
    marker = f"5{uuid.uuid4().int % 10**8:08d}"
    sleeper = await h.flow(flow(shell(f"sleep {marker}")))
    running: asyncio.Queue[str] = asyncio.Queue()

    def listener(event: Event) -> None:
        if isinstance(event, ExecutionChanged) and event.execution.state.current == State.RUNNING:
            running.put_nowait(event.execution.id)

    unsubscribe = h.engine.subscribe(listener)
    try:
        for step in range(30):
            ex = await h.start(sleeper)
            async with asyncio.timeout(10):  # bounded: the command itself never ends
                assert await running.get() == ex.id
                await asyncio.sleep(step * 0.0005)  # a sweep across the start
                assert await h.engine.kill(ex.id)
            assert (await h.engine.wait(ex.id)).state.current == State.KILLED
    finally:
        unsubscribe()
    assert await asyncio.to_thread(processes_with, marker) == []


async def test_background_processes_left_by_a_finished_command_are_stopped(h: Harness) -> None:
    marker = f"3{uuid.uuid4().int % 10**8:08d}"
    ex = await h.run(flow(shell(f"sleep {marker} &", "echo done")))
    assert ex.state.current == State.SUCCESS
    assert await asyncio.to_thread(processes_with, marker) == []


# -- Kestra's output protocol -----------------------------------------------------------


async def test_protocol_lines_set_vars_metrics_and_logs_and_are_not_logged(h: Harness) -> None:
    ex = await h.run(
        flow(
            shell(
                """echo '::{"outputs":{"a":1,"nested":{"b":[1,2]}}}::'""",
                """echo '::{"outputs":{"c":"three","a":2}}::'""",
                """echo '::{"metrics":[{"name":"rows","type":"counter","value":5,"""
                """"tags":{"t":"x"}},"""
                """{"name":"took","type":"timer","value":1.5},"""
                """{"name":"g","type":"gauge","value":-2}]}::'""",
                """echo '::{"logs":[{"level":"ERROR","message":"bad thing"},"""
                """{"level":"DEBUG","message":"detail"}]}::' >&2""",
                "echo plain",
                task_id="proto",
                extra="warningOnStdErr: false",
            )
        )
    )
    assert ex.state.current == State.SUCCESS
    outputs = ex.task_runs[0].outputs
    assert outputs["vars"] == {"a": 2, "nested": {"b": [1, 2]}, "c": "three"}
    assert (outputs["stdOutLineCount"], outputs["stdErrLineCount"]) == (4, 1)
    # stdout and stderr are read side by side: only the order within each is known
    logs = await messages(h, ex)
    assert sorted(logs) == [("DEBUG", "detail"), ("ERROR", "bad thing"), ("INFO", "plain")]
    assert logs.index(("ERROR", "bad thing")) < logs.index(("DEBUG", "detail"))
    metrics = [
        (m["name"], m["type"], m["value"], m["tags"], m["taskId"])
        for m in await h.store.metrics(ex.id)
    ]
    assert metrics == [
        ("rows", "counter", 5.0, {"t": "x"}, "proto"),
        ("took", "timer", 1.5, {}, "proto"),
        ("g", "gauge", -2.0, {}, "proto"),
    ]


async def test_vars_are_read_by_later_tasks(h: Harness) -> None:
    ex = await h.run(
        flow(
            shell("""echo '::{"outputs":{"count":42}}::'""", task_id="make"),
            """
        - id: use
          type: io.kestra.plugin.core.debug.Return
          format: "{{ outputs.make.vars.count + 1 }}"
        """,
        )
    )
    assert ex.task_runs[1].outputs == {"value": "43"}


async def test_a_malformed_protocol_line_is_logged_as_text_with_a_warning(h: Harness) -> None:
    histogram = """echo '::{"metrics":[{"name":"m","type":"histogram","value":1}]}::'"""
    ex = await h.run(
        flow(
            shell(
                """echo '::{"outputs": {"a": }}::'""",
                histogram,
                """echo '::{"outputs":{"after":true}}::'""",
            )
        )
    )
    assert ex.state.current == State.SUCCESS
    assert ex.task_runs[0].outputs["vars"] == {"after": True}
    why = "the line above looks like a Kestra output line (::{...}::) but was not used: "
    assert await messages(h, ex) == [
        ("INFO", '::{"outputs": {"a": }}::'),
        ("WARN", why + "not JSON: Expecting value: line 1 column 19 (char 18)"),
        ("INFO", '::{"metrics":[{"name":"m","type":"histogram","value":1}]}::'),
        ("WARN", why + "metrics[0] 'm': 'type' must be counter, timer or gauge, got 'histogram'"),
    ]
    assert await h.store.metrics(ex.id) == []


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[1]", "expected a JSON object, got a list"),
        ('{"outputs": [1]}', "'outputs' must be an object, got a list"),
        ('{"metrics": {}}', "'metrics' must be a list, got an object"),
        ('{"metrics": [3]}', "metrics[0] must be an object, got a number"),
        (
            '{"metrics": [{"type": "counter", "value": 1}]}',
            "metrics[0]: 'name' must be a non-empty string",
        ),
        (
            '{"metrics": [{"name": "n", "type": "counter", "value": "1"}]}',
            "metrics[0] 'n': 'value' must be a finite number, got '1'",
        ),
        (
            '{"metrics": [{"name": "n", "type": "counter", "value": true}]}',
            "metrics[0] 'n': 'value' must be a finite number, got True",
        ),
        (
            '{"metrics": [{"name": "n", "type": "gauge", "value": 1, "tags": [1]}]}',
            "metrics[0] 'n': 'tags' must be an object, got a list",
        ),
        ('{"logs": "x"}', "'logs' must be a list, got a string"),
        (
            '{"logs": [{"level": "LOUD", "message": "m"}]}',
            "logs[0]: 'level' must be one of TRACE, DEBUG, INFO, WARN, ERROR, got 'LOUD'",
        ),
        ('{"logs": [{"level": "INFO"}]}', "logs[0]: 'message' must be a string, got null"),
        ('{"outputs": ', "not JSON: Expecting value: line 1 column 13 (char 12)"),
    ],
)
def test_protocol_refuses_what_does_not_fit_with_the_reason(text: str, error: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse(text)
    assert str(info.value) == error


def test_protocol_ignores_unknown_keys_and_stringifies_tags() -> None:
    message = parse(
        '{"assets": {}, "metrics": [{"name": "n", "type": "timer", "value": 2, '
        '"tags": {"k": 1}}], "logs": [{"level": "WARNING", "message": "w"}]}'
    )
    assert message.outputs == {}
    assert [(m.name, m.value, m.tags) for m in message.metrics] == [("n", 2.0, {"k": "1"})]
    assert [(log.level, log.message) for log in message.logs] == [("WARN", "w")]


async def test_the_real_kestra_package_works_unchanged(h: Harness) -> None:
    ex = await h.run(
        flow(f"""
        - id: py
          type: io.kestra.plugin.scripts.python.Script
          warningOnStdErr: false
          env:
            PATH: {json.dumps(VENV_PATH)}
          script: |
            from kestra import Kestra
            Kestra.outputs({{"n": 3, "name": "x"}})
            Kestra.counter("rows", 10, {{"table": "t"}})
            Kestra.timer("took", 1.5)
            Kestra.gauge("ratio", 0.25)
            log = Kestra.logger()
            log.info("info via logger")
            log.warning("warning via logger")
        """)
    )
    assert ex.state.current == State.SUCCESS, ex.error
    assert ex.task_runs[0].outputs["vars"] == {"n": 3, "name": "x"}
    assert [
        (m["name"], m["type"], m["value"], m["tags"]) for m in await h.store.metrics(ex.id)
    ] == [
        ("rows", "counter", 10.0, {"table": "t"}),
        ("took", "timer", 1.5, {}),
        ("ratio", "gauge", 0.25, {}),
    ]
    logs = await messages(h, ex)
    assert [level for level, _ in logs] == ["INFO", "WARN"]
    assert logs[0][1].endswith("Z - info via logger")
    assert logs[1][1].endswith("Z - warning via logger")


async def test_execution_context_file_is_read_by_the_kestra_package_then_removed(
    h: Harness,
) -> None:
    ex = await h.run(
        flow(
            f"""
        - id: py
          type: io.kestra.plugin.scripts.python.Script
          executionContext: true
          outputFiles: ["*"]
          env:
            PATH: {json.dumps(VENV_PATH)}
          script: |
            from kestra import context
            print(context.inputs.who, context.flow.id, context.taskrun.id == "{{{{ taskrun.id }}}}",
                  context.labels.team, "envs" in context)
        """,
            inputs="labels:\n  team: data\ninputs:\n  - id: who\n    type: STRING\n",
        ),
        {"who": "Ada"},
    )
    assert ex.state.current == State.SUCCESS, ex.error
    assert await messages(h, ex) == [("INFO", "Ada f True data False")]
    assert ex.task_runs[0].outputs["outputFiles"] == {}


# -- files in and out -------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """A local HTTP server: /data.csv.gz (gzip) and /repo ({"pull_count": 1234})."""

    async def data(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(b"id,name\n1,ada\n2,grace\n"))

    async def repo(request: web.Request) -> web.Response:
        return web.json_response({"pull_count": 1234})

    app = web.Application()
    app.router.add_get("/data.csv.gz", data)
    app.router.add_get("/repo", repo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_downloaded_gzip_becomes_an_output_file_a_later_task_reads(
    h: Harness, server: str
) -> None:
    ex = await h.run(
        flow(
            shell(
                "curl -sSf {{ inputs.url }}/data.csv.gz | gunzip > data.csv",
                "echo other > notes.txt",
                task_id="extract",
                extra='outputFiles: ["*.csv"]\n',
            ),
            """
        - id: use
          type: io.kestra.plugin.core.debug.Return
          format: "{{ read(outputs.extract.outputFiles['data.csv']) }}"
        """,
            inputs="inputs:\n  - id: url\n    type: STRING\n",
        ),
        {"url": server},
    )
    assert ex.state.current == State.SUCCESS, ex.error
    files = ex.task_runs[0].outputs["outputFiles"]
    assert list(files) == ["data.csv"]
    assert files["data.csv"].startswith("kestra:///ns/f/executions/")
    assert ex.task_runs[1].outputs == {"value": "id,name\n1,ada\n2,grace\n"}


async def test_output_file_globs_follow_kestra(h: Harness) -> None:
    ex = await h.run(
        flow(
            shell(
                "mkdir -p sub/deep",
                "touch a.csv b.txt sub/c.csv sub/deep/d.csv",
                task_id="make",
                extra='outputFiles: ["*.csv", "sub/**.csv", "{b,z}.txt"]\n',
            )
        )
    )
    assert sorted(ex.task_runs[0].outputs["outputFiles"]) == [
        "a.csv",
        "b.txt",
        "sub/c.csv",
        "sub/deep/d.csv",
    ]


async def test_symbolic_links_are_never_collected(h: Harness) -> None:
    ex = await h.run(
        flow(
            shell(
                "ln -s /etc/hostname leak.txt",
                "ln -s /etc etc",
                "touch real.txt",
                task_id="make",
                extra='outputFiles: ["**"]\n',
            )
        )
    )
    assert ex.task_runs[0].outputs["outputFiles"].keys() == {"real.txt"}


def test_glob_patterns_translate_java_syntax() -> None:
    assert glob_regex("/*.csv").match("/a.csv")
    assert not glob_regex("/*.csv").match("/sub/a.csv")
    assert glob_regex("/**.csv").match("/sub/a.csv")
    assert glob_regex("/[!a]?.{csv,txt}").match("/bc.txt")
    assert not glob_regex("/[!a]?.{csv,txt}").match("/ac.txt")


async def test_input_files_are_written_or_copied_from_storage(h: Harness) -> None:
    ex = await h.run(
        flow(
            shell(
                "printf 'stored text' > out.txt", task_id="make", extra='outputFiles: ["out.txt"]\n'
            ),
            shell(
                "cat in/stored.txt",
                "echo",
                "cat inline.txt",
                task_id="use",
                extra="""
                                inputFiles:
                                  in/stored.txt: "{{ outputs.make.outputFiles['out.txt'] }}"
                                  inline.txt: "hello {{ flow.id }}"
                                """,
            ),
        )
    )
    assert ex.state.current == State.SUCCESS, ex.error
    assert [m for _, m in await messages(h, ex)] == ["stored text", "hello f"]


async def test_an_input_file_outside_the_working_dir_is_refused(h: Harness) -> None:
    ex = await h.run(
        flow(
            shell(
                "true",
                task_id="bad",
                extra="""
        inputFiles:
          ../escape.txt: nope
        """,
            )
        )
    )
    assert ex.error == (
        "task 'bad': inputFiles: '../escape.txt' is not a relative path inside "
        "the working directory"
    )


async def test_namespace_files_are_copied_with_include_and_exclude(h: Harness) -> None:
    """Kestra NamespaceFilesUtilsTest: include/exclude are PathMatcherPredicate patterns
    (`etl.py` matches at any depth); the files come from the store."""
    for rel in ("etl.py", "scripts/a.py", "scripts/b.sql", "other/etl.py"):
        await h.engine.store.namespace_files.write("ns", rel, one_chunk(rel.encode()))
    ex = await h.run(
        flow(
            shell(
                "find . -type f -not -name '.*' | sort",
                extra="""
        namespaceFiles:
          enabled: true
          include: ["etl.py", "scripts/**"]
          exclude: ["**.sql"]
        """,
            )
        )
    )
    assert ex.state.current == State.SUCCESS, ex.error
    listed = [m for level, m in await messages(h, ex) if level == "INFO"]
    assert listed == ["./etl.py", "./other/etl.py", "./scripts/a.py"]


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_working_dir_is_fresh_per_task_run_and_removed_afterwards(h: Harness) -> None:
    ex = await h.run(
        flow(
            shell("ls -A", "echo $WORKING_DIR", "touch left.txt", task_id="one"),
            shell("ls -A", task_id="two"),
        )
    )
    assert ex.state.current == State.SUCCESS
    one, two = (h.engine.data_dir / "tmp" / ex.id / tr.id for tr in ex.task_runs)
    assert [m for _, m in await messages(h, ex)] == [str(one)]
    assert not await asyncio.to_thread(one.exists)
    assert not await asyncio.to_thread(two.exists)


async def test_an_ended_execution_leaves_no_directory_in_data_tmp(h: Harness) -> None:
    """Issue #13 finding 10: data/tmp kept one empty directory per execution. Kestra's
    worker deletes a task's working directory when the task ends (WorkingDirectory
    `cleanup`); podium also removes the execution's own directory when it ends (with
    those of other executions that ended meanwhile, in one thread hop: `drain` waits)."""
    ex = await h.run(flow(shell("touch left.txt"), shell("true", task_id="two")))
    assert ex.state.current == State.SUCCESS
    await h.engine.drain()
    tmp = h.engine.data_dir / "tmp"
    assert not await asyncio.to_thread((tmp / ex.id).exists)


async def test_working_dir_is_kept_when_configured(h: Harness) -> None:
    h.engine.options.keep_working_dirs = True
    ex = await h.run(flow(shell("touch left.txt")))
    kept = h.engine.data_dir / "tmp" / ex.id / ex.task_runs[0].id / "left.txt"
    assert await asyncio.to_thread(kept.exists)


# -- properties and loading -------------------------------------------------------------


def test_unknown_task_runner_type_is_a_load_error() -> None:
    with pytest.raises(FlowError) as info:
        load_flow(flow(shell("true", extra="taskRunner:\n  type: io.kestra.Nope\n")), "f.yaml")
    assert "taskRunner" in str(info.value)
    assert "'io.kestra.Nope'" in str(info.value)


def test_kestra_property_names_load_and_typos_do_not() -> None:
    loaded = load_flow(
        flow("""
        - id: py
          type: io.kestra.plugin.scripts.python.Commands
          taskRunner:
            type: io.kestra.core.models.tasks.runners.types.ProcessTaskRunner
          containerImage: python:3.11-slim
          packageManager: PIP
          pythonVersion: "3.11"
          dependencyCacheEnabled: false
          dependencies: [requests]
          warningOnStdErr: false
          failFast: false
          executionContext: true
          namespaceFiles: {enabled: true, ifExists: WARN, folderPerNamespace: true}
          outputFiles: ["*.csv"]
          commands: [python main.py]
        """),
        "f.yaml",
    )
    assert loaded.tasks[0].type == "io.kestra.plugin.scripts.python.Commands"
    with pytest.raises(FlowError) as info:
        load_flow(flow(shell("true", extra="warningOnStdError: false\n")), "f.yaml")
    assert "warningOnStdError" in str(info.value)


async def test_stderr_alone_does_not_fail_the_task(h: Harness) -> None:
    ex = await h.run(flow(shell("echo careful >&2", extra="warningOnStdErr: false")))
    assert ex.task_runs[0].state.current == State.SUCCESS


async def test_stderr_output_makes_the_task_a_warning(h: Harness) -> None:
    ex = await h.run(flow(shell("echo careful >&2")))
    assert ex.task_runs[0].state.current == State.WARNING
    assert ex.state.current == State.WARNING


# -- cached virtual environments --------------------------------------------------------


def build_wheel(directory: Path, name: str, value: int) -> Path:
    """A minimal pure-Python wheel, so that installing dependencies needs no index."""
    files = {
        f"{name}/__init__.py": f"VALUE = {value}\n",
        f"{name}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{name}-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: podium-tests\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [
        f"{path},sha256="
        f"{base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()}"
        f",{len(text.encode())}"
        for path, text in files.items()
    ]
    files[f"{name}-1.0.dist-info/RECORD"] = (
        "\n".join([*record, f"{name}-1.0.dist-info/RECORD,,"]) + "\n"
    )
    wheel = directory / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def uses(wheel: Path, manager: str, task_id: str = "py", extra: str = "") -> str:
    name = wheel.name.split("-")[0]
    return f"""
        - id: {task_id}
          type: io.kestra.plugin.scripts.python.Script
          packageManager: {manager}
          warningOnStdErr: false
          dependencies: [{json.dumps(str(wheel))}]
{textwrap.indent(textwrap.dedent(extra), " " * 10)}
          script: |
            import {name}, sys
            print("value", {name}.VALUE, sys.prefix != sys.base_prefix)
        """


def installs(logs: list[tuple[str, str]]) -> int:
    return sum(m.startswith("installing ") and "new virtual environment" in m for _, m in logs)


@pytest.mark.parametrize("manager", ["PIP", "UV"])
async def test_dependencies_install_once_into_a_cached_venv(
    h: Harness, tmp_path: Path, manager: str
) -> None:
    wheel = await asyncio.to_thread(build_wheel, tmp_path, f"tiny_{manager.lower()}", 7)
    first = await h.run(flow(uses(wheel, manager)))
    assert first.state.current == State.SUCCESS, first.error
    logs = await messages(h, first)
    assert installs(logs) == 1
    assert any("tiny" in m for _, m in logs[1:-1])  # the installer's own progress lines
    assert logs[-1] == ("INFO", "value 7 True")
    second = await h.run(flow(uses(wheel, manager)))
    assert await messages(h, second) == [("INFO", "value 7 True")]
    venvs = await asyncio.to_thread(
        lambda: sorted(p.name for p in (h.engine.data_dir / "venvs").iterdir() if p.is_dir())
    )
    assert len(venvs) == 1
    if manager == "UV":
        assert await asyncio.to_thread((h.engine.data_dir / "cache" / "uv").is_dir)


async def test_two_executions_needing_a_new_venv_build_it_once(h: Harness, tmp_path: Path) -> None:
    wheel = await asyncio.to_thread(build_wheel, tmp_path, "tiny_shared", 9)
    source = await h.flow(flow(uses(wheel, "PIP")))
    started = [await h.start(source), await h.start(source)]
    ended = [await h.engine.wait(ex.id) for ex in started]
    assert [ex.state.current for ex in ended] == [State.SUCCESS, State.SUCCESS]
    logs = [await messages(h, ex) for ex in ended]
    assert sum(installs(one) for one in logs) == 1
    assert all(one[-1] == ("INFO", "value 9 True") for one in logs)


HOLD_LOCK = """
import fcntl, sys
with open(sys.argv[1], "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.readline()
    open(sys.argv[2], "w").close()  # "built" by this other process
"""


async def test_a_venv_another_process_is_building_is_waited_for_not_rebuilt(
    h: Harness, tmp_path: Path
) -> None:
    wheel = await asyncio.to_thread(build_wheel, tmp_path, "tiny_locked", 5)
    source = await h.flow(flow(uses(wheel, "UV")))
    assert (await h.run(source)).state.current == State.SUCCESS
    venvs = h.engine.data_dir / "venvs"
    (venv,) = await asyncio.to_thread(lambda: [p for p in venvs.iterdir() if p.is_dir()])
    marker = venv / ".podium-ready"
    await asyncio.to_thread(marker.unlink)  # as if another daemon were still building it
    waiting = asyncio.Event()

    def listener(event: Event) -> None:
        if isinstance(event, LogAppended) and event.line["message"].startswith(
            "waiting for another podium process"
        ):
            waiting.set()

    other = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLD_LOCK,
        str(venvs / f"{venv.name}.lock"),
        str(marker),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert other.stdin is not None and other.stdout is not None
    unsubscribe = h.engine.subscribe(listener)
    try:
        assert await asyncio.wait_for(other.stdout.readline(), 20) == b"locked\n"
        ex = await h.start(source)
        await asyncio.wait_for(waiting.wait(), 20)
        other.stdin.write(b"go\n")
        await other.stdin.drain()
        assert await asyncio.wait_for(other.wait(), 20) == 0
        ex = await asyncio.wait_for(h.engine.wait(ex.id), 20)
    finally:
        unsubscribe()
        if other.returncode is None:
            other.kill()
            await other.wait()
    assert ex.state.current == State.SUCCESS, ex.error
    logs = await messages(h, ex)
    assert installs(logs) == 0
    assert logs[-1] == ("INFO", "value 5 True")


async def test_without_dependency_cache_the_venv_is_thrown_away(h: Harness, tmp_path: Path) -> None:
    wheel = await asyncio.to_thread(build_wheel, tmp_path, "tiny_once", 1)
    ex = await h.run(flow(uses(wheel, "UV", extra="dependencyCacheEnabled: false\n")))
    assert ex.state.current == State.SUCCESS, ex.error
    assert (await messages(h, ex))[-1] == ("INFO", "value 1 True")
    venvs = h.engine.data_dir / "venvs"
    assert await asyncio.to_thread(lambda: [p.name for p in venvs.iterdir() if p.is_dir()]) == []


async def test_a_failed_install_fails_the_task_with_the_installers_words(
    h: Harness, tmp_path: Path
) -> None:
    missing = tmp_path / "absent-1.0-py3-none-any.whl"
    ex = await h.run(flow(uses(missing, "UV", task_id="deps")))
    assert ex.state.current == State.FAILED
    using = next(m for _, m in await messages(h, ex) if m.startswith("Using Python"))
    assert ex.error == (
        f"task 'deps': installing the dependencies failed: uv exited with code "
        f"1:\n{using}\nerror: Distribution not found at: {missing.as_uri()}"
    )
    venvs = h.engine.data_dir / "venvs"
    assert await asyncio.to_thread(lambda: [p.name for p in venvs.iterdir() if p.is_dir()]) == []


# -- the seed's Python flow -------------------------------------------------------------


async def test_seed_python_flow_reports_downloads_with_the_kestra_package(
    h: Harness, server: str
) -> None:
    """flows/02_python.yaml as written, but on the Process runner: requests and kestra come
    from PyPI into the cached venv (PyPI is reachable here; the script's URL is local)."""
    source = await asyncio.to_thread((FLOWS / "02_python.yaml").read_text)
    source += textwrap.dedent("""
        pluginDefaults:
          - type: io.kestra.plugin.scripts.python.Script
            forced: true
            values:
              taskRunner:
                type: io.kestra.plugin.core.runner.Process
        """)
    ex = await h.run(source, {"url": f"{server}/repo"})
    assert ex.state.current == State.SUCCESS, ex.error
    assert ex.task_runs[0].outputs["vars"] == {"downloads": 1234}


# -- Kestra's files and package, whatever runs the script ----------------------------------


async def test_kestra_uris_in_commands_are_downloaded_into_the_working_directory(
    h: Harness,
) -> None:
    """Kestra ScriptService.replaceInternalStorage: a `kestra://` URI in a command is
    downloaded into the working directory and replaced by the local file's path."""
    ex = await h.run(
        flow(
            shell(
                "printf 'a,b\\n1,2\\n' > data.csv", task_id="make", extra='outputFiles: ["*.csv"]'
            ),
            shell(
                "wc -l < {{ outputs.make.outputFiles['data.csv'] }}",
                "test -f {{ outputs.make.outputFiles['data.csv'] }} && echo local",
                task_id="use",
            ),
        )
    )
    assert ex.state.current == State.SUCCESS, ex.error
    assert [m for _, m in await messages(h, ex)] == ["2", "local"]


async def test_the_kestra_module_is_found_without_installing_it(h: Harness, tmp_path: Path) -> None:
    """Kestra's python tasks run where the `kestra` package is at hand: run by a Python that
    does not have it, a script still imports it (podium's stand-in module) and its outputs,
    metrics and logs arrive."""
    bare = tmp_path / "bin"

    def python_without_kestra() -> None:
        bare.mkdir()
        (bare / "python").symlink_to("/usr/bin/python3")  # the system's: no `kestra`

    await asyncio.to_thread(python_without_kestra)
    ex = await h.run(
        flow(f"""
        - id: py
          type: io.kestra.plugin.scripts.python.Script
          warningOnStdErr: false
          env:
            PATH: {bare}:/usr/bin:/bin
          script: |
            import sys
            from kestra import Kestra
            Kestra.outputs({{"python": sys.executable, "n": 1}})
            Kestra.timer("took", 0.5, {{"k": "v"}})
            Kestra.logger().info("via logger")
        """)
    )
    assert ex.state.current == State.SUCCESS, ex.error
    assert ex.task_runs[0].outputs["vars"] == {"python": str(bare / "python"), "n": 1}
    assert [(m["name"], m["value"]) for m in await h.store.metrics(ex.id)] == [("took", 0.5)]
    assert (await messages(h, ex))[0][1].endswith("Z - via logger")
