"""The namespace files API as Kestra's NamespaceFileController serves it (its
NamespaceFileControllerTest: search, file, stats, list, createDirectory, createFile,
createFile_ExtractZip, move, delete, forbiddenPaths), tenant-less and under `main`."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import aiohttp
import pytest

from tests.api_helpers import call, serving
from tests.harness import Harness

NS = "io.namespace"


def upload(name: str, content: bytes) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("fileContent", content, filename=name, content_type="application/octet-stream")
    return data


def other_part() -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("other", b"x", filename="o.txt")
    return data


async def content(url: str, path: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, params={"path": path}) as resp:
        return resp.status, await resp.read()


@pytest.mark.parametrize("prefix", ["/api/v1", "/api/v1/main"])
async def test_upload_list_stat_download_move_delete(h: Harness, prefix: str) -> None:
    """createFile, list, stats, file, search, move, delete: the same under the `main`
    tenant as without it."""
    async with serving(h) as url:
        base = f"{url}{prefix}/namespaces/{NS}/files"
        for path, body in (("/test/test.txt", b"Hello World"), ("/test/test2.txt", b"Hi")):
            status, _, _ = await call("POST", base, params={"path": path}, data=upload("x", body))
            assert status == 200
        status, listed, _ = await call("GET", f"{base}/directory")
        assert status == 200
        assert [(e["fileName"], e["type"]) for e in listed] == [("test", "Directory")]
        _, listed, _ = await call("GET", f"{base}/directory", params={"path": "/test"})
        assert [e["fileName"] for e in listed] == ["test.txt", "test2.txt"]
        status, stats, _ = await call("GET", f"{base}/stats", params={"path": "/test/test.txt"})
        assert status == 200
        assert stats["fileName"] == "test.txt" and stats["type"] == "File"
        assert stats["size"] == 11 and stats["lastModifiedTime"] > 0 and stats["metadata"] == {}
        _, root, _ = await call("GET", f"{base}/stats")
        assert (root["fileName"], root["type"]) == ("_files", "Directory")
        assert await content(base, "/test/test.txt") == (200, b"Hello World")
        _, found, _ = await call("GET", f"{base}/search", params={"q": "2.txt"})
        assert found == ["/test/test2.txt"]
        status, _, _ = await call("PUT", base, params={"from": "/test", "to": "/foo"})
        assert status == 200
        assert await content(base, "/foo/test2.txt") == (200, b"Hi")
        status, _, _ = await call("DELETE", base, params={"path": "/foo/test.txt"})
        assert status == 200
        _, listed, _ = await call("GET", f"{base}/directory", params={"path": "/foo"})
        assert [e["fileName"] for e in listed] == ["test2.txt"]
        # the last file of a folder takes the folder with it, never the root
        await call("DELETE", base, params={"path": "/foo/test2.txt"})
        _, listed, _ = await call("GET", f"{base}/directory")
        assert listed == []


async def test_directories_are_made_and_zips_export_and_import(h: Harness) -> None:
    """createDirectory, export and createFile_ExtractZip: the export holds every file
    (not empty folders), and uploading it as a .zip recreates the files elsewhere."""
    async with serving(h) as url:
        source = f"{url}/api/v1/namespaces/io.kestra.tests/files"
        await call("POST", f"{source}/directory", params={"path": "/empty_folder"})
        for path, body in (("/file.txt", b"file"), ("/folder/file.txt", b"folder_file")):
            await call("POST", source, params={"path": path}, data=upload("f", body))
        _, listed, _ = await call("GET", f"{source}/directory")
        assert [(e["fileName"], e["type"]) for e in listed] == [
            ("empty_folder", "Directory"),
            ("file.txt", "File"),
            ("folder", "Directory"),
        ]
        async with aiohttp.ClientSession() as session, session.get(f"{source}/export") as resp:
            assert resp.status == 200
            assert "io.kestra.tests_files.zip" in resp.headers["Content-Disposition"]
            archive = await resp.read()
        names = zipfile.ZipFile(io.BytesIO(archive)).namelist()
        assert sorted(names) == ["file.txt", "folder/file.txt"]
        target = f"{url}/api/v1/namespaces/{NS}/files"
        status, _, _ = await call(
            "POST", target, params={"path": "/files.zip"}, data=upload("files.zip", archive)
        )
        assert status == 200
        assert await content(target, "/folder/file.txt") == (200, b"folder_file")
        assert await content(target, "/file.txt") == (200, b"file")


@pytest.mark.parametrize(
    ("method", "suffix", "kwargs", "status", "message"),
    [
        ("GET", "", {"params": {"path": "/../../etc/passwd"}}, 422, "'..' is not allowed"),
        ("GET", "", {}, 400, "Required QueryValue [path] not specified"),
        ("GET", "", {"params": {"path": "/_flows/test.yml"}}, 422, "Forbidden path: /_flows"),
        ("GET", "/stats", {"params": {"path": "/_flows"}}, 422, "Forbidden path"),
        ("GET", "", {"params": {"path": "/missing.txt"}}, 404, "namespace file /missing.txt"),
        ("GET", "/directory", {"params": {"path": "/nope"}}, 404, "directory /nope not found"),
        ("GET", "/search", {}, 400, "Required QueryValue [q] not specified"),
        ("PUT", "", {"params": {"from": "/a"}}, 400, "Required QueryValue [to]"),
        ("PUT", "", {"params": {"from": "/a", "to": "/b"}}, 404, "namespace file /a not found"),
        ("DELETE", "", {"params": {"path": "a/../../b"}}, 422, "'..' is not allowed"),
        ("DELETE", "", {"params": {"path": "/missing"}}, 404, "not found"),
        (
            "POST",
            "",
            {
                "params": {"path": "/a.txt"},
                "data": b"raw",
                "headers": {"Content-Type": "text/plain"},
            },
            415,
            "send the file as multipart/form-data",
        ),
        (
            "POST",
            "",
            {"params": {"path": "/a.txt"}, "data": other_part()},
            400,
            "Required Part [fileContent] not specified",
        ),
        (
            "POST",
            "",
            {
                "params": {"path": "/a.txt"},
                "data": b'--b\r\nContent-Disposition: form-data; name="fileContent"\r\n\r\nno end',
                "headers": {"Content-Type": "multipart/form-data; boundary=b"},
            },
            400,
            "the multipart body is malformed",
        ),
        (
            "POST",
            "",
            {"params": {"path": "/x.zip"}, "data": None},
            400,
            "the .zip file cannot be read",
        ),
        ("POST", "", {"params": {"path": "/_flows/f.yml"}, "data": None}, 422, "Forbidden path"),
    ],
)
async def test_malformed_requests_are_refused_and_change_nothing(
    h: Harness,
    method: str,
    suffix: str,
    kwargs: dict[str, Any],
    status: int,
    message: str,
) -> None:
    """forbiddenPaths and the controller's required parameters: a clear 4xx each time, and
    the namespace's tree unchanged."""
    if kwargs.get("data", ...) is None:
        kwargs = {**kwargs, "data": upload("x.zip", b"not a zip")}
    async with serving(h) as url:
        base = f"{url}/api/v1/namespaces/{NS}/files"
        got, doc, _ = await call(method, base + suffix, **kwargs)
        assert got == status, doc
        assert message in doc["message"], doc
        _, listed, _ = await call("GET", f"{base}/directory")
        assert listed == []


async def test_a_bad_namespace_or_a_conflict_is_a_clear_error(h: Harness) -> None:
    async with serving(h) as url:
        status, doc, _ = await call("GET", f"{url}/api/v1/namespaces/Bad!/files/directory")
        assert status == 400 and "namespace 'Bad!' must match" in doc["message"]
        base = f"{url}/api/v1/namespaces/{NS}/files"
        await call("POST", base, params={"path": "/a.txt"}, data=upload("a", b"1"))
        status, doc, _ = await call("POST", f"{base}/directory", params={"path": "/a.txt"})
        assert (status, doc["message"]) == (409, "Conflict: a file already exists at /a.txt")
        status, doc, _ = await call(
            "POST", base, params={"path": "/a.txt/b"}, data=upload("b", b"2")
        )
        assert status == 409 and "/a.txt is a file" in doc["message"]
