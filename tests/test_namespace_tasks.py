"""The namespace file tasks (Kestra core/src/test/.../plugin/core/namespace: UploadFilesTest,
DownloadFilesTest, DeleteFilesTest) on the store's namespace files."""

from __future__ import annotations

from collections.abc import AsyncIterator

from daemon.sdk.state import State
from tests.harness import Harness


async def put(h: Harness, namespace: str, path: str, text: str) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield text.encode()

    await h.engine.store.namespace_files.write(namespace, path, chunks())


async def paths(h: Harness, namespace: str) -> list[str]:
    entries = await h.engine.store.namespace_files.list(namespace, recursive=True)
    return [e.path for e in entries if not e.is_directory]


async def text(h: Harness, namespace: str, path: str) -> str:
    parts = [c async for c in h.engine.store.namespace_files.read(namespace, path)]
    return b"".join(parts).decode()


async def test_upload_files_from_the_working_directory_and_from_stored_files(h: Harness) -> None:
    """UploadFilesTest.shouldUploadFiles / shouldPutFileWithFilesMap: `files` patterns on
    the working directory (under `destination`), `filesMap` names -> stored URIs."""
    ex = await h.run("""
        id: f
        namespace: company.team
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            tasks:
              - id: make
                type: io.kestra.plugin.scripts.shell.Commands
                taskRunner:
                  type: io.kestra.plugin.core.runner.Process
                outputFiles: ["report.csv"]
                commands:
                  - mkdir -p src/sub && echo a > src/a.py && echo b > src/sub/b.py
                  - echo skip > notes.txt && echo 1,2 > report.csv
              - id: upload
                type: io.kestra.plugin.core.namespace.UploadFiles
                namespace: "{{ flow.namespace }}.code"
                files: ["src/**"]
                destination: /project
          - id: upload_map
            type: io.kestra.plugin.core.namespace.UploadFiles
            filesMap:
              reports/latest.csv: "{{ outputs.make.outputFiles['report.csv'] }}"
        """)
    assert ex.state.current == State.SUCCESS, ex.error
    assert await paths(h, "company.team.code") == ["/project/src/a.py", "/project/src/sub/b.py"]
    assert await text(h, "company.team", "/reports/latest.csv") == "1,2\n"
    upload = next(tr for tr in ex.task_runs if tr.task_id == "upload")
    assert upload.outputs == {
        "files": {
            "/project/src/a.py": "nsfile://company.team.code/project/src/a.py",
            "/project/src/sub/b.py": "nsfile://company.team.code/project/src/sub/b.py",
        }
    }


async def test_upload_conflict_error_fails_and_skip_keeps_the_file(h: Harness) -> None:
    """UploadFiles `conflict` (Namespace.Conflicts): ERROR fails the task, SKIP keeps the
    existing file, OVERWRITE (the default) replaces it."""
    await put(h, "company.team", "/a.txt", "old")
    flow = """
        id: f
        namespace: company.team
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            inputFiles:
              a.txt: new
            tasks:
              - id: upload
                type: io.kestra.plugin.core.namespace.UploadFiles
                files: ["a.txt"]
                conflict: MODE
        """
    ex = await h.run(flow.replace("MODE", "ERROR"))
    assert ex.state.current == State.FAILED
    assert "a file already exists at /a.txt in namespace company.team" in (ex.error or "")
    ex = await h.run(flow.replace("MODE", "SKIP"))
    assert ex.state.current == State.SUCCESS, ex.error
    assert await text(h, "company.team", "/a.txt") == "old"
    ex = await h.run(flow.replace("MODE", "OVERWRITE"))
    assert ex.state.current == State.SUCCESS, ex.error
    assert await text(h, "company.team", "/a.txt") == "new"


async def test_upload_needs_files_or_files_map(h: Harness) -> None:
    ex = await h.run("""
        id: f
        namespace: company.team
        tasks:
          - id: upload
            type: io.kestra.plugin.core.namespace.UploadFiles
            destination: /x
        """)
    assert ex.state.current == State.FAILED
    assert "files or filesMap is required" in (ex.error or "")


async def test_download_files_stores_the_matching_files_of_another_namespace(h: Harness) -> None:
    """DownloadFilesTest: PathMatcherPredicate patterns (`input.txt` at any depth); `files`
    maps each namespace path to the stored copy (named under `destination`), which later
    tasks read."""
    await put(h, "tutorial", "/a/input.txt", "hello")
    await put(h, "tutorial", "/b/input.txt", "world")
    await put(h, "tutorial", "/other.csv", "x")
    ex = await h.run("""
        id: f
        namespace: company.team
        tasks:
          - id: download
            type: io.kestra.plugin.core.namespace.DownloadFiles
            namespace: tutorial
            files: input.txt
            destination: fetched
          - id: show
            type: io.kestra.plugin.core.log.Log
            message: "{{ read(outputs.download.files['/a/input.txt']) }}"
        """)
    assert ex.state.current == State.SUCCESS, ex.error
    download = next(tr for tr in ex.task_runs if tr.task_id == "download")
    assert sorted(download.outputs["files"]) == ["/a/input.txt", "/b/input.txt"]
    names = sorted(uri.rsplit("/", 1)[1] for uri in download.outputs["files"].values())
    assert names == ["fetched_a_input.txt", "fetched_b_input.txt"]  # storage flattens paths
    assert "hello" in await h.logs(ex)


async def test_delete_files_by_pattern_and_their_empty_folders(h: Harness) -> None:
    """DeleteFilesTest (with deleteParentFolder): `**.upl` deletes at any depth; folders
    left empty go too when asked; the `deleted` metric counts the files."""
    for path in ("/a.upl", "/dir/sub/b.upl", "/dir/keep.txt", "/empty/c.upl"):
        await put(h, "tutorial", path, "x")
    ex = await h.run("""
        id: f
        namespace: company.team
        tasks:
          - id: delete
            type: io.kestra.plugin.core.namespace.DeleteFiles
            namespace: tutorial
            files: ["**.upl"]
            deleteParentFolder: true
        """)
    assert ex.state.current == State.SUCCESS, ex.error
    entries = await h.engine.store.namespace_files.list("tutorial", recursive=True)
    assert [e.path for e in entries] == ["/dir", "/dir/keep.txt"]
    await h.store.flush()
    metrics = await h.store.metrics(ex.id)
    assert [(m["name"], m["value"]) for m in metrics] == [("deleted", 3)]


async def test_namespace_file_tasks_refuse_a_bad_namespace_or_path(h: Harness) -> None:
    """Malformed input: a namespace that is not one, a destination leaving the tree."""
    ex = await h.run("""
        id: f
        namespace: company.team
        tasks:
          - id: delete
            type: io.kestra.plugin.core.namespace.DeleteFiles
            namespace: "Bad Namespace"
            files: "**"
        """)
    assert ex.state.current == State.FAILED
    assert "'Bad Namespace' is not a namespace" in (ex.error or "")
    ex = await h.run("""
        id: f
        namespace: company.team
        tasks:
          - id: wd
            type: io.kestra.plugin.core.flow.WorkingDirectory
            inputFiles:
              a.txt: x
            tasks:
              - id: upload
                type: io.kestra.plugin.core.namespace.UploadFiles
                files: ["a.txt"]
                destination: ../../escape
        """)
    assert ex.state.current == State.FAILED
    assert "'..' is not allowed" in (ex.error or "")
