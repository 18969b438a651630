"""A real `podium serve` whose files live in object storage (moto's S3 server) or in its
PostgreSQL store: an uploaded FILE input, a task's output file and the file a downstream
task reads all go through the storage, none through the data directory.

Kestra: the internal-storage round trip of core/src/test/java/io/kestra/core/runners/
InputsTest (FILE inputs) and the outputFiles -> inputFiles handoff of
plugin-scripts' CommandsTest; the execution's files go with DELETE /executions/{id} as
Kestra's ExecutionController.delete(deleteLogs, deleteMetrics, deleteStorage).
"""

from __future__ import annotations

import asyncio
import textwrap
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

from daemon.config.storage import StorageSettings
from daemon.store.internal_storage import Storage, open_blobs
from tests.cluster_helpers import fresh_database
from tests.daemon_process import ServeProcess
from tests.services import MotoS3

FLOW = textwrap.dedent("""\
    id: handoff
    namespace: storage.e2e
    inputs:
      - id: upload
        type: FILE
    tasks:
      - id: produce
        type: io.kestra.plugin.scripts.shell.Commands
        outputFiles: ["cities.csv"]
        commands:
          - printf 'city,pop\\nParis,2\\nLyon,1\\n' > cities.csv
      - id: consume
        type: io.kestra.plugin.scripts.shell.Commands
        inputFiles:
          in.csv: "{{ outputs.produce.outputFiles['cities.csv'] }}"
          upload.txt: "{{ inputs.upload }}"
        outputFiles: ["summary.txt"]
        commands:
          - wc -l < in.csv | tr -d ' ' > summary.txt
          - cat upload.txt >> summary.txt
      - id: check
        type: io.kestra.plugin.core.debug.Return
        format: "{{ read(outputs.consume.outputFiles['summary.txt']) }}|{{ fileSize(outputs.produce.outputFiles['cities.csv']) }}"
    """)  # noqa: E501


@pytest.fixture
def s3_env(moto_s3: MotoS3) -> tuple[dict[str, str], tuple[str, ...], StorageSettings]:
    """`podium serve` configured for S3 by its environment alone, as systemd would."""
    prefix = f"e2e-{uuid.uuid4().hex[:8]}"
    env = {
        "PODIUM_STORAGE_TYPE": "s3",
        "PODIUM_STORAGE_ENDPOINT": moto_s3.endpoint,
        "PODIUM_STORAGE_REGION": "us-east-1",
        "PODIUM_STORAGE_BUCKET": moto_s3.bucket,
        "PODIUM_STORAGE_PREFIX": prefix,
        "PODIUM_STORAGE_ACCESS_KEY": moto_s3.access_key,
        "PODIUM_STORAGE_SECRET_KEY": moto_s3.secret_key,
        "PODIUM_STORAGE_PATH_STYLE": "true",
    }
    settings = StorageSettings(
        type="s3",
        endpoint=moto_s3.endpoint,
        region="us-east-1",
        bucket=moto_s3.bucket,
        prefix=prefix,
        access_key=moto_s3.access_key,
        secret_key=moto_s3.secret_key,
        path_style=True,
    )
    return env, (), settings


@pytest.fixture
def postgres_env(
    postgres_dsn: str,
) -> Iterator[tuple[dict[str, str], tuple[str, ...], StorageSettings]]:
    """`podium serve` on a fresh PostgreSQL database keeping its files there too."""
    runner = asyncio.Runner()
    manager = fresh_database(postgres_dsn)
    try:
        dsn = runner.run(manager.__aenter__())
        yield (
            {"PODIUM_STORAGE_TYPE": "postgres"},
            ("--store", dsn),
            StorageSettings(type="postgres", dsn=dsn),
        )
    finally:
        runner.run(manager.__aexit__(None, None, None))
        runner.close()


def multipart(name: str, filename: str, data: bytes) -> tuple[bytes, dict[str, str]]:
    boundary = "podium-e2e-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
            f'filename="{filename}"\r\nContent-Type: text/plain\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


async def stored_keys(settings: StorageSettings, tmp_path: Path, prefix: str) -> list[str]:
    """What the backend itself holds under `prefix`, read with a storage of our own."""
    storage = Storage(open_blobs(settings, tmp_path, None), tmp_path / "probe-cache")
    try:
        return await storage.blobs.keys(prefix)
    finally:
        await storage.close()


def local_files(data: Path) -> list[Path]:
    storage = data / "storage"
    return [p for p in storage.rglob("*") if p.is_file()] if storage.exists() else []


@pytest.mark.parametrize("backend", ["s3", "postgres"])
def test_a_flow_hands_a_file_to_the_next_task_through_the_storage(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    env, args, settings = request.getfixturevalue(f"{backend}_env")
    flows, data = tmp_path / "flows", tmp_path / "data"
    flows.mkdir()
    (flows / "handoff.yaml").write_text(FLOW)
    daemon = ServeProcess(tmp_path, flows, data, env=env, args=args).start()
    try:
        body, headers = multipart("upload", "note.txt", b"uploaded through the API\n")
        status, created = daemon.request(
            "POST", "/api/v1/executions/storage.e2e/handoff", body, headers
        )
        assert status == 200, created
        done = daemon.wait_execution(created["id"], {"SUCCESS", "FAILED"}, timeout=120)
        assert done["state"]["current"] == "SUCCESS", daemon.output()
        runs: dict[str, Any] = {run["taskId"]: run for run in done["taskRunList"]}
        assert runs["check"]["outputs"]["value"] == "3\nuploaded through the API\n|24"
        upload_uri = done["inputs"]["upload"]
        summary_uri = runs["consume"]["outputs"]["outputFiles"]["summary.txt"]
        assert upload_uri.startswith("kestra:///storage/e2e/handoff/executions/")

        # the API serves the stored file (streamed from the backend)
        query = urllib.parse.urlencode({"path": summary_uri})
        status, text = daemon.request("GET", f"/api/v1/executions/{done['id']}/file?{query}")
        assert (status, text) == (200, "3\nuploaded through the API\n")

        # the files are in the backend, not in the data directory
        prefix = f"storage/e2e/handoff/executions/{done['id']}"
        keys = asyncio.run(stored_keys(settings, tmp_path, prefix))
        assert {f"kestra:///{k}" for k in keys} >= {
            upload_uri,
            summary_uri,
            runs["produce"]["outputs"]["outputFiles"]["cities.csv"],
        }
        assert local_files(data) == []

        # deleting the execution deletes its files from the backend
        status, _ = daemon.request("DELETE", f"/api/v1/executions/{done['id']}")
        assert status == 204
        assert asyncio.run(stored_keys(settings, tmp_path, prefix)) == []
    finally:
        assert daemon.stop() == 0


def test_postgres_storage_keeps_its_files_in_its_own_tables(
    postgres_env: tuple[dict[str, str], tuple[str, ...], StorageSettings], tmp_path: Path
) -> None:
    """The chunks are rows of storage_chunks: the file can be seen from SQL."""
    env, args, settings = postgres_env
    flows, data = tmp_path / "flows", tmp_path / "data"
    flows.mkdir()
    (flows / "w.yaml").write_text(
        "id: w\nnamespace: pg.files\ntasks:\n  - id: write\n"
        "    type: io.kestra.plugin.core.storage.Write\n    content: hello rows\n"
    )
    daemon = ServeProcess(tmp_path, flows, data, env=env, args=args).start()
    try:
        doc = daemon.create_execution("pg.files", "w")
        done = daemon.wait_execution(doc["id"], {"SUCCESS", "FAILED"})
        assert done["state"]["current"] == "SUCCESS", daemon.output()
        uri = done["taskRunList"][0]["outputs"]["uri"]

        async def row() -> Any:
            conn = await asyncpg.connect(settings.dsn)
            try:
                return await conn.fetchrow(
                    "SELECT f.size, c.data FROM storage_files f JOIN storage_chunks c "
                    "ON c.blob = f.blob WHERE f.key = $1",
                    uri.removeprefix("kestra:///"),
                )
            finally:
                await conn.close()

        found = asyncio.run(row())
        assert (found["size"], bytes(found["data"])) == (10, b"hello rows")
        assert local_files(data) == []
    finally:
        assert daemon.stop() == 0
