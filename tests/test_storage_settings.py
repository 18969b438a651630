"""The `storage:` setting from podium.yaml and PODIUM_STORAGE_* variables, and the clear
errors of a storage setting podium cannot use.

Kestra configures its storage the same way (`kestra.storage.type: s3` with the plug-in's
`endpoint`, `region`, `bucket`, `accessKey`, `secretKey`, `forcePathStyle`: the
storage-s3 plug-in's README); podium spells them as its other settings.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest

from daemon.config.settings import ConfigError, load_settings
from daemon.config.storage import StorageSettings
from tests.daemon_process import ROOT, ServeProcess


def test_the_default_is_the_local_directory() -> None:
    assert load_settings(None, {}, environ={}).storage == StorageSettings(type="local")


def test_s3_from_the_file_with_dashed_names(tmp_path: Path) -> None:
    config = tmp_path / "podium.yaml"
    config.write_text(
        "storage:\n  type: s3\n  bucket: files\n  prefix: prod/\n"
        "  endpoint: http://minio.lan:9000\n  path-style: true\n"
        "  access-key: AK\n  secret-key: SK\n  part-size: 16777216\n"
    )
    storage = load_settings(config, {}, environ={}).storage
    assert (storage.type, storage.bucket, storage.prefix) == ("s3", "files", "prod/")
    assert (storage.endpoint, storage.path_style) == ("http://minio.lan:9000", True)
    assert (storage.access_key, storage.secret_key, storage.part_size) == ("AK", "SK", 16 * 2**20)


def test_s3_from_the_environment_alone() -> None:
    environ = {
        "PODIUM_STORAGE_TYPE": "s3",
        "PODIUM_STORAGE_BUCKET": "files",
        "PODIUM_STORAGE_ACCESS_KEY": "AK",
        "PODIUM_STORAGE_SECRET_KEY": "SK",
        "PODIUM_STORAGE_PATH_STYLE": "true",
        "PODIUM_BASIC_AUTH_USERNAME": "admin",  # nesting of other settings still works
        "PODIUM_BASIC_AUTH_PASSWORD": "pw",
    }
    settings = load_settings(None, {}, environ=environ)
    assert (settings.storage.type, settings.storage.bucket) == ("s3", "files")
    assert (settings.storage.access_key, settings.storage.secret_key) == ("AK", "SK")
    assert settings.storage.path_style is True
    assert settings.basic_auth is not None and settings.basic_auth.username == "admin"


def test_the_environment_wins_over_the_file_key_by_key(tmp_path: Path) -> None:
    config = tmp_path / "podium.yaml"
    config.write_text("storage:\n  type: s3\n  bucket: from-file\n  region: eu-west-1\n")
    environ = {"PODIUM_STORAGE_BUCKET": "from-env"}
    storage = load_settings(config, {}, environ=environ).storage
    assert (storage.bucket, storage.region) == ("from-env", "eu-west-1")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PODIUM_STORAGE_TYPE": "s3"}, "storage type s3 needs a bucket"),
        ({"PODIUM_STORAGE_TYPE": "ftp"}, "storage.type: Input should be 'local', 's3' or"),
        ({"PODIUM_STORAGE_ACESS_KEY": "x"}, "storage.acess-key: Extra inputs are not permitted"),
        ({"PODIUM_STORAGE_BUCKET": "b"}, "bucket: only for storage type s3"),
        (
            {"PODIUM_STORAGE_TYPE": "s3", "PODIUM_STORAGE_BUCKET": "b",
             "PODIUM_STORAGE_ENDPOINT": "minio:9000"},
            "endpoint: expected an http:// or https:// URL",
        ),
        (
            {"PODIUM_STORAGE_TYPE": "postgres", "PODIUM_STORAGE_DSN": "mysql://x"},
            "dsn: expected a postgresql:// URL",
        ),
        ({"PODIUM_STORAGE_PART_SIZE": "1024"}, "storage.part-size: Input should be greater"),
        ({"PODIUM_STORAGE_RETRIES": "lots"}, "storage.retries: Input should be a valid integer"),
    ],
)  # fmt: skip
def test_a_storage_setting_podium_cannot_use_is_one_clear_error(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, {}, environ=environ)
    assert message in str(caught.value)


def test_postgres_storage_without_a_postgres_store_stops_serve_with_one_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "flows").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "daemon", "serve", "--flows", str(tmp_path / "flows"),
         "--data-dir", str(tmp_path / "data"), "--port", "0"],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
        env={"PATH": "/usr/bin:/bin", "PODIUM_STORAGE_TYPE": "postgres"},
    )  # fmt: skip
    assert result.returncode != 0
    assert (
        "podium: storage type postgres needs a PostgreSQL store (store: postgresql://...) "
        "or its own storage dsn"
    ) in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_a_storage_changed_by_sighup_waits_for_a_restart(tmp_path: Path) -> None:
    """Files already stored stay where they are: moving them is the admin's job, so the
    running daemon keeps its storage and says the change needs a restart."""
    (tmp_path / "flows").mkdir()
    config = tmp_path / "podium.yaml"
    config.write_text("log-level: INFO\n")
    daemon = ServeProcess(
        tmp_path, tmp_path / "flows", tmp_path / "data", args=("--config", str(config))
    ).start()
    try:
        config.write_text("storage:\n  type: s3\n  bucket: elsewhere\n")
        mark = len(daemon.lines)
        daemon.signal(signal.SIGHUP)
        daemon.wait_line("storage changed: takes effect after a restart", after=mark)
        assert daemon.proc is not None and daemon.proc.poll() is None
    finally:
        assert daemon.stop() == 0


def test_podium_run_keeps_its_files_where_podium_storage_says(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """`podium run` reads PODIUM_STORAGE_* as `podium serve` does: a task's output goes to
    PostgreSQL, none to the data directory (Kestra: the storage of a standalone server)."""
    flow = tmp_path / "w.yaml"
    flow.write_text(
        "id: w\nnamespace: run.files\ntasks:\n  - id: write\n"
        "    type: io.kestra.plugin.core.storage.Write\n    content: from podium run\n"
    )
    data = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "-m", "daemon", "run", str(flow), "--data-dir", str(data), "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PODIUM_STORAGE_TYPE": "postgres",
             "PODIUM_STORAGE_DSN": postgres_dsn},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    uri = json.loads(result.stdout)["taskRunList"][0]["outputs"]["uri"]

    async def stored() -> tuple[int, bytes]:
        conn = await asyncpg.connect(postgres_dsn)
        try:
            row = await conn.fetchrow(
                "SELECT f.size, c.data FROM storage_files f JOIN storage_chunks c "
                "ON c.blob = f.blob WHERE f.key = $1",
                uri.removeprefix("kestra:///"),
            )
        finally:
            await conn.close()
        return int(row["size"]), bytes(row["data"])

    assert asyncio.run(stored()) == (15, b"from podium run")
    assert not (data / "storage").exists()
