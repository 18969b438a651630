"""WorkingDirectory: child tasks sharing one directory, its input/output files and cache,
and LocalFiles, the legacy task its Kestra tests use."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from daemon.sdk.execution import Execution
from daemon.sdk.state import State
from tests.harness import Harness, problems


async def read(h: Harness, uri: str) -> str:
    return await h.engine.resources.storage.read_text(uri)


def runs(ex: Execution, task_id: str) -> list[dict[str, object]]:
    return [tr.outputs for tr in ex.task_runs if tr.task_id == task_id]


WORKING_DIRECTORY = """
    id: working-directory
    namespace: io.kestra.tests
    inputs:
      - id: failed
        type: STRING
    tasks:
      - id: worker
        type: io.kestra.core.tasks.flows.WorkingDirectory
        tasks:
          - id: first
            type: io.kestra.core.tasks.storages.LocalFiles
            inputs:
              out/stay.txt: "{{ inputs.failed == 'true' ? ko: taskrun.id }}"
          - id: second
            type: io.kestra.core.tasks.storages.LocalFiles
            outputs:
              - out/*
          - id: disabled
            type: io.kestra.core.tasks.debugs.Return
            disabled: true
        errors:
          - id: error-t1
            type: io.kestra.core.tasks.debugs.Return
            format: "Error Trigger ! {{task.id}}"
      - id: 2_end
        type: io.kestra.core.tasks.debugs.Return
        format: "{{ outputs.second.uris['out/stay.txt'] }}"
    """


async def test_children_share_one_directory(h: Harness) -> None:
    """WorkingDirectoryTest.success (working-directory.yaml): what `first` writes, `second`
    finds; the disabled child gets no task run: 4 task runs, SUCCESS."""
    ex = await h.run(WORKING_DIRECTORY, {"failed": "false"})
    assert ex.state.current == State.SUCCESS
    assert [tr.task_id for tr in ex.task_runs] == ["worker", "first", "second", "2_end"]
    end = ex.task_runs[-1].outputs["value"]
    assert end.startswith("kestra://")
    first = next(tr for tr in ex.task_runs if tr.task_id == "first")
    assert await read(h, end) == first.id


async def test_a_failed_child_stops_the_others_and_runs_errors(h: Harness) -> None:
    """WorkingDirectoryTest.failed (working-directory.yaml with failed=true): `first` fails
    to render, `second` never runs, `error-t1` runs once, `2_end` not: 3 task runs."""
    ex = await h.run(WORKING_DIRECTORY, {"failed": "true"})
    assert ex.state.current == State.FAILED
    assert [tr.task_id for tr in ex.task_runs] == ["worker", "first", "error-t1"]
    assert [tr.state.current for tr in ex.task_runs] == [
        State.FAILED,
        State.FAILED,
        State.SUCCESS,
    ]


async def test_input_files_are_there_for_the_first_child(h: Harness) -> None:
    """WorkingDirectoryTest.inputFiles (working-directory-inputs.yml): 2 task runs, the
    child finds `input.txt` with the given text; a kestra:// content is the stored file's
    (FilesService.inputFiles)."""
    ex = await h.run("""
        id: working-directory-inputs
        namespace: io.kestra.tests
        tasks:
          - id: write
            type: io.kestra.plugin.core.storage.Write
            content: stored
          - id: workingDir
            type: io.kestra.plugin.core.flow.WorkingDirectory
            inputFiles:
              input.txt: Hello World
              sub/copied.txt: "{{ outputs.write.uri }}"
            tasks:
              - id: inputFiles
                type: io.kestra.plugin.core.storage.LocalFiles
                outputs:
                  - input.txt
                  - sub/*
        """)
    assert ex.state.current == State.SUCCESS
    uris = ex.task_runs[-1].outputs["uris"]
    assert sorted(uris) == ["input.txt", "sub/copied.txt"]
    assert await read(h, uris["input.txt"]) == "Hello World"
    assert await read(h, uris["sub/copied.txt"]) == "stored"


async def test_input_files_given_as_json_text(h: Harness) -> None:
    """FilesService.inputFiles: a string `inputFiles` is rendered, then read as a JSON
    object of file names to contents."""
    ex = await h.run("""
        id: f
        namespace: ns
        variables:
          files:
            a.txt: from a map
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            inputFiles: "{{ vars.files | json }}"
            outputFiles: ["a.txt"]
            tasks:
              - id: noop
                type: io.kestra.plugin.core.log.Log
                message: hello
        """)
    assert ex.state.current == State.SUCCESS
    assert await read(h, ex.task_runs[0].outputs["outputFiles"]["a.txt"]) == "from a map"


async def test_an_input_file_outside_the_directory_is_refused(h: Harness) -> None:
    """WorkingDirectory.preExecuteTasks: a failure before the children fails the task with
    "Failed preExecuteTasks on WorkingDirectory" and runs no child."""
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            inputFiles:
              ../escape.txt: nope
            tasks:
              - id: never
                type: io.kestra.plugin.core.log.Log
                message: hello
        """)
    assert ex.state.current == State.FAILED
    assert [tr.task_id for tr in ex.task_runs] == ["wd"]
    [message] = await h.logs(ex, "ERROR")
    assert message.startswith("Failed preExecuteTasks on WorkingDirectory: inputFiles:")
    assert "'../escape.txt' is not a relative path" in message


async def test_output_files_become_its_outputs(h: Harness) -> None:
    """WorkingDirectoryTest.outputFiles (working-directory-outputs.yml): the task's outputs
    hold `outputFiles`, whose file is what the child wrote; later tasks read it."""
    ex = await h.run("""
        id: working-directory-outputs
        namespace: io.kestra.tests
        tasks:
          - id: workingDir
            type: io.kestra.plugin.core.flow.WorkingDirectory
            outputFiles:
              - output.txt
            tasks:
              - id: outputFiles
                type: io.kestra.plugin.core.storage.LocalFiles
                inputs:
                  output.txt: "Hello World"
          - id: after
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.workingDir.outputFiles['output.txt'] }}"
        """)
    assert ex.state.current == State.SUCCESS
    assert [tr.task_id for tr in ex.task_runs] == ["workingDir", "outputFiles", "after"]
    uri = ex.task_runs[0].outputs["outputFiles"]["output.txt"]
    assert await read(h, uri) == "Hello World"
    assert ex.task_runs[-1].outputs == {"value": uri}


async def test_without_output_files_it_has_no_outputs(h: Harness) -> None:
    """WorkingDirectory.outputs: no `outputFiles` captured means no outputs at all."""
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            outputFiles: ["nothing-*.txt"]
            tasks:
              - id: hello
                type: io.kestra.plugin.core.log.Log
                message: hello
        """)
    assert ex.state.current == State.SUCCESS
    assert ex.task_runs[0].outputs == {}


async def test_scripts_share_the_directory_named_by_workingDir(h: Harness, tmp_path: Path) -> None:
    """The WorkingDirectory doc example: a shell command writes `{{ workingDir }}/stay.txt`,
    the next one reads it back as an output; the directory is removed afterwards."""
    ex = await h.run("""
        id: working-directory
        namespace: io.kestra.tests
        tasks:
          - id: working-directory
            type: io.kestra.plugin.core.flow.WorkingDirectory
            tasks:
              - id: first
                type: io.kestra.plugin.scripts.shell.Commands
                taskRunner:
                  type: io.kestra.plugin.core.runner.Process
                commands:
                  - 'echo "{{ taskrun.id }}" > {{ workingDir }}/stay.txt'
              - id: second
                type: io.kestra.plugin.scripts.shell.Commands
                taskRunner:
                  type: io.kestra.plugin.core.runner.Process
                commands:
                  - echo '::{"outputs":{"stay":"'$(cat stay.txt)'"}}::'
        """)
    assert ex.state.current == State.SUCCESS, await h.logs(ex)
    wd, first, second = ex.task_runs
    assert second.outputs["vars"] == {"stay": first.id}
    shared = h.engine.data_dir / "tmp" / ex.id / wd.id
    assert not await asyncio.to_thread(shared.exists)


async def test_a_restarted_working_directory_runs_every_child_again(
    h: Harness, tmp_path: Path
) -> None:
    """WorkingDirectory runs its children as one unit in one directory: after a restart
    the directory is new, so the children that had succeeded run again before the failed
    one does (their files would be missing otherwise)."""
    marker = tmp_path / "second-ran-once"
    ex = await h.run(
        """
        id: f
        namespace: ns
        inputs:
          - id: marker
            type: STRING
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            tasks:
              - id: first
                type: io.kestra.plugin.core.storage.LocalFiles
                inputs:
                  data.txt: made by first
              - id: second
                type: io.kestra.plugin.scripts.shell.Commands
                taskRunner:
                  type: io.kestra.plugin.core.runner.Process
                commands:
                  - test -f {{ inputs.marker }} || { touch {{ inputs.marker }}; exit 1; }
                  - echo '::{"outputs":{"data":"'"$(cat data.txt)"'"}}::'
        """,
        {"marker": str(marker)},
    )
    assert ex.state.current == State.FAILED
    restarted = await h.engine.restart(ex.id)
    final = await h.engine.wait(restarted.id)
    assert final.state.current == State.SUCCESS, await h.logs(final)
    assert [tr.task_id for tr in final.task_runs].count("first") == 2
    assert runs(final, "second")[-1]["vars"] == {"data": "made by first"}


CACHED = """
    id: working-directory-cache
    namespace: io.kestra.tests
    tasks:
      - id: workingDir
        type: io.kestra.plugin.core.flow.WorkingDirectory
        cache:
          ttl: PT5m
          patterns:
            - "*.txt"
        tasks:
          - id: exists
            type: io.kestra.plugin.core.storage.LocalFiles
            outputs:
              - hello.txt
          - id: inputFiles
            type: io.kestra.plugin.core.storage.LocalFiles
            inputs:
              hello.txt: |
                HELLO WORLD
    """


def cache_files(h: Harness) -> list[Path]:
    return sorted((h.engine.data_dir / "caches").rglob("cache.zip"))


async def test_the_cache_comes_back_in_the_next_execution(h: Harness) -> None:
    """WorkingDirectoryTest.cache (working-directory-cache.yml): the first run finds no
    hello.txt and leaves a cache; the second finds hello.txt restored from it."""
    first = await h.run(CACHED)
    assert first.state.current == State.SUCCESS
    assert runs(first, "exists") == [{"uris": {}}]
    assert len(await asyncio.to_thread(cache_files, h)) == 1
    second = await h.run(CACHED)
    assert second.state.current == State.SUCCESS
    [outputs] = runs(second, "exists")
    assert await read(h, outputs["uris"]["hello.txt"]) == "HELLO WORLD\n"


async def test_an_expired_cache_is_not_restored(h: Harness) -> None:
    """WorkingDirectory.Cache.ttl: "after this duration the cache will be deleted"."""
    await h.run(CACHED)
    [archive] = await asyncio.to_thread(cache_files, h)
    old = time.time() - 600  # older than PT5m
    await asyncio.to_thread(os.utime, archive, (old, old))
    again = await h.run(CACHED)
    assert runs(again, "exists") == [{"uris": {}}]


async def test_only_runnable_tasks_may_be_its_children() -> None:
    """WorkingDirectoryTaskValidation: "Only runnable tasks are allowed as children of a
    WorkingDirectory task"; an empty `tasks` is refused too."""
    found = problems("""
        id: f
        namespace: ns
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            tasks:
              - id: par
                type: io.kestra.plugin.core.flow.Parallel
                tasks:
                  - id: a
                    type: io.kestra.plugin.core.log.Log
                    message: a
        """)
    assert any("Only runnable tasks are allowed as children" in p for p in found), found
    empty = problems("""
        id: f
        namespace: ns
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            tasks: []
        """)
    assert any("tasks" in p for p in empty), empty


async def put(h: Harness, namespace: str, path: str, text: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield text.encode()

    await h.engine.store.namespace_files.write(namespace, path, chunks())


async def test_namespace_files_are_in_the_directory_before_the_first_child(h: Harness) -> None:
    """Kestra WorkingDirectoryTest.namespaceFiles and NamespaceFilesUtilsTest: the files of
    the namespaces named (rendered), later namespaces winning, `exclude` applied; with
    `folderPerNamespace` each namespace has its folder; `enabled: false` injects nothing."""
    await put(h, "ns", "/scripts/main.sh", "echo from-ns")
    await put(h, "ns", "/ignore/secret.txt", "no")
    await put(h, "shared", "/scripts/main.sh", "echo from-shared")
    await put(h, "shared", "/lib/util.txt", "util")
    flow = """
        id: f
        namespace: ns
        variables:
          extra: shared
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            namespaceFiles:
              enabled: {enabled}
              namespaces: ["{{ flow.namespace }}", "{{ vars.extra }}"]
              folderPerNamespace: {per_namespace}
              exclude:
                - /ignore/**
            tasks:
              - id: list
                type: io.kestra.plugin.scripts.shell.Commands
                taskRunner:
                  type: io.kestra.plugin.core.runner.Process
                commands:
                  - find . -type f | sort | tr '\\n' ' '
        """

    async def listed(enabled: str, per_namespace: str) -> str:
        ex = await h.run(
            flow.replace("{enabled}", enabled).replace("{per_namespace}", per_namespace)
        )
        assert ex.state.current == State.SUCCESS, ex.error
        return " ".join(await h.logs(ex, "INFO")).strip()

    assert await listed("true", "false") == "./lib/util.txt ./scripts/main.sh"
    assert await listed("true", "true") == (
        "./ns/scripts/main.sh ./shared/lib/util.txt ./shared/scripts/main.sh"
    )
    assert await listed("false", "false") == ""


async def test_namespace_files_if_exists_fail_refuses_to_replace_a_file(h: Harness) -> None:
    """NamespaceFiles.ifExists FAIL: a file the directory already has (restored from the
    cache before the namespace files come) is not replaced; the task fails saying so."""
    await put(h, "ns", "/a.txt", "namespace")
    flow = """
        id: f
        namespace: ns
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            cache:
              patterns: ["a.txt"]
            namespaceFiles:
              ifExists: FAIL
            tasks:
              - id: write
                type: io.kestra.plugin.scripts.shell.Commands
                taskRunner:
                  type: io.kestra.plugin.core.runner.Process
                commands: ["echo mine > a.txt"]
        """
    first = await h.run(flow)
    assert first.state.current == State.SUCCESS, first.error
    second = await h.run(flow)
    assert second.state.current == State.FAILED
    assert "a.txt already exists in the working directory (ifExists: FAIL)" in (
        second.error or ""
    ), second.error


async def test_the_legacy_worker_name_is_a_working_directory(h: Harness) -> None:
    """WorkingDirectory's aliases: io.kestra.core.tasks.flows.Worker."""
    ex = await h.run("""
        id: f
        namespace: ns
        tasks:
          - id: w
            type: io.kestra.core.tasks.flows.Worker
            tasks:
              - id: a
                type: io.kestra.core.tasks.storages.LocalFiles
                inputs: {a.txt: A}
              - id: b
                type: io.kestra.core.tasks.storages.LocalFiles
                outputs: ["*.txt"]
        """)
    assert ex.state.current == State.SUCCESS
    assert list(ex.task_runs[-1].outputs["uris"]) == ["a.txt"]
