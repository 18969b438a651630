"""Kestra's flow export and import (FlowControllerTest.exportByIds,
exportFlowsByQueryForANamespace, importFlowsWithYaml, importFlowsWithZip; HasSource's
readSourceFile and asZipFile) against a real app and a live flows directory."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.api_helpers import FlowServer, call, flow_server, yaml_body
from tests.harness import Harness


def flow(flow_id: str, namespace: str = "io.kestra.tests", message: str = "hi") -> str:
    return (
        f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n  - id: log\n"
        f"    type: io.kestra.plugin.core.log.Log\n    message: {message}\n"
    )


@pytest.fixture
async def server(h: Harness, tmp_path: Path) -> AsyncIterator[FlowServer]:
    async with flow_server(h, tmp_path / "flows") as s:
        for flow_id, namespace in (
            ("each-object", "io.kestra.tests"),
            ("webhook", "io.kestra.tests"),
            ("sub", "io.kestra.tests.sub"),
            ("other", "io.kestra.tests2"),
        ):
            status, doc, _ = await call(
                "POST", f"{s.url}/api/v1/flows", **yaml_body(flow(flow_id, namespace))
            )
            assert status == 200, doc
        yield s


async def download(method: str, url: str, **kwargs: object) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as session, session.request(method, url, **kwargs) as r:
        return r.status, await r.read(), r.headers.get("Content-Disposition", "")


def entries(data: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name).decode() for name in archive.namelist()}


def upload(name: str, content: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("fileUpload", content, filename=name, content_type="application/octet-stream")
    return form


def zipped(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


async def test_export_by_ids_zips_each_source(server: FlowServer) -> None:
    body = [
        {"namespace": "io.kestra.tests", "id": "each-object"},
        {"namespace": "io.kestra.tests", "id": "webhook"},
    ]
    status, data, disposition = await download(
        "POST", f"{server.url}/api/v1/flows/export/by-ids", json=body
    )
    assert status == 200
    assert disposition == 'attachment; filename="flows.zip"'
    assert entries(data) == {
        "io.kestra.tests.each-object.yaml": flow("each-object"),
        "io.kestra.tests.webhook.yaml": flow("webhook"),
    }
    status, _, _ = await download(
        "POST",
        f"{server.url}/api/v1/flows/export/by-ids",
        json=[{"namespace": "io.kestra.tests", "id": "nope"}],
    )
    assert status == 404


async def test_export_by_query_takes_the_namespace_as_a_prefix(server: FlowServer) -> None:
    """exportFlowsByQueryForANamespace: io.kestra.tests and io.kestra.tests.sub, not
    io.kestra.tests2."""
    status, data, _ = await download(
        "GET", f"{server.url}/api/v1/flows/export/by-query?namespace=io.kestra.tests"
    )
    assert status == 200
    assert sorted(entries(data)) == [
        "io.kestra.tests-each-object.yml",
        "io.kestra.tests-webhook.yml",
        "io.kestra.tests.sub-sub.yml",
    ]
    status, data, _ = await download(
        "GET", f"{server.url}/api/v1/flows/export/by-query?filters[namespace][EQUALS]=x"
    )
    assert (status, entries(data)) == (200, {})


async def test_import_a_yaml_of_several_flows(server: FlowServer, h: Harness) -> None:
    """importFlowsWithYaml: each document imported; the indexes of those that do not
    validate are answered, the others imported."""
    text = (
        flow("a", "io.kestra.unittest")
        + "---\n"
        + "id: broken\nnamespace: io.kestra.unittest\n"
        + "---\n"
        + flow("webhook", message="changed")
    )
    url = f"{server.url}/api/v1/flows/import"
    status, doc, _ = await call("POST", url, data=upload("flows.yaml", text.encode()))
    assert (status, doc) == (200, ["1"])
    assert ("io.kestra.unittest", "a") in h.engine.catalog
    updated = h.engine.catalog[("io.kestra.tests", "webhook")]
    assert (updated.revision, "changed" in updated.source) == (2, True)
    status, doc, _ = await call(
        "POST", url + "?failOnError=true", data=upload("flows.yml", text.encode())
    )
    assert status == 422
    assert doc["message"] == ("Illegal argument: Following invalid flows were not imported: 1")


async def test_import_a_zip_of_flows(server: FlowServer, h: Harness) -> None:
    """importFlowsWithZip: an export imported back changes nothing; entries that are not
    YAML are skipped, those that do not validate named."""
    status, data, _ = await download(
        "GET", f"{server.url}/api/v1/flows/export/by-query?namespace=io.kestra.tests"
    )
    url = f"{server.url}/api/v1/flows/import"
    status, doc, _ = await call("POST", url, data=upload("flows.zip", data))
    assert (status, doc) == (200, [])
    assert h.engine.catalog[("io.kestra.tests", "webhook")].revision == 1
    archive = zipped(
        {
            "dir/new.yaml": flow("new", "io.kestra.zip"),
            "notes.txt": "not a flow",
            "bad.yml": "id: bad\n",
            "binary.yaml": b"\xff\xfe not UTF-8",
        }
    )
    status, doc, _ = await call("POST", url, data=upload("FLOWS.ZIP", archive))
    assert (status, doc) == (200, ["bad.yml", "binary.yaml"])
    assert ("io.kestra.zip", "new") in h.engine.catalog


async def test_import_refuses_what_it_cannot_read(server: FlowServer) -> None:
    url = f"{server.url}/api/v1/flows/import"
    status, doc, _ = await call("POST", url, data=upload("flows.txt", b"x"))
    assert (status, doc["message"]) == (422, "Illegal argument: Cannot import file of type .txt")
    status, doc, _ = await call("POST", url, data=upload("flows.zip", b"not a zip"))
    assert status == 400 and "ZIP" in doc["message"]
    form = aiohttp.FormData()
    form.add_field("other", b"x", filename="x.yaml")
    status, doc, _ = await call("POST", url, data=form)
    assert (status, doc["message"]) == (
        400,
        "Bad Request: Required Part [fileUpload] not specified",
    )
    status, doc, _ = await call("POST", url, **yaml_body(flow("x")))
    assert status == 415
    status, _, _ = await call("POST", url + "?failOnError=perhaps", data=upload("a.yaml", b""))
    assert status == 400
