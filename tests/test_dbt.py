"""Kestra's dbt plug-in: a small dbt project (a seed, two models, two tests) built on
DuckDB and on the private PostgreSQL, each node shown as a task run under the dbt task
with its state, as Kestra's ResultParser makes them (kestra-io/plugin-dbt DbtCLITest,
BuildTest, ResultParserTest).

dbt's virtual environment is made once per machine (first run: about a minute).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.sdk.state import State
from tests.harness import Harness

PROJECT = Path(__file__).parent / "data" / "dbt_project"
ENVIRONMENTS = Path(os.environ.get("PODIUM_TEST_DBT_CACHE", "/var/tmp/podium-test-dbt"))
TIMEOUT = 900  # the first run installs dbt


@pytest.fixture
def dbt_cache() -> Iterator[None]:
    """dbt's environments in a cache every test session on this machine shares."""
    before = os.environ.get("PODIUM_DBT_ENVIRONMENTS")
    os.environ["PODIUM_DBT_ENVIRONMENTS"] = str(ENVIRONMENTS)
    yield
    if before is None:
        del os.environ["PODIUM_DBT_ENVIRONMENTS"]
    else:
        os.environ["PODIUM_DBT_ENVIRONMENTS"] = before


def input_files() -> str:
    lines = []
    for path in sorted(PROJECT.rglob("*")):
        if path.is_file():
            rel = path.relative_to(PROJECT).as_posix()
            text = path.read_text()
            if "{{" in text:  # inputFiles are rendered, as in Kestra: dbt's Jinja stays raw
                text = "{% raw %}" + text + "{% endraw %}"
            body = "\n".join("        " + line for line in text.splitlines())
            lines.append(f"      {rel}: |\n{body}")
    return "\n".join(lines)


def children(execution: object, parent: str) -> dict[str, str]:
    runs = execution.task_runs  # type: ignore[attr-defined]
    parent_id = next(tr.id for tr in runs if tr.task_id == parent)
    return {tr.task_id: tr.state.current.value for tr in runs if tr.parent_task_run_id == parent_id}


NODES = {
    "seed.podium_shop.raw_orders": "SUCCESS",
    "model.podium_shop.customers": "SUCCESS",
    "model.podium_shop.big_customers": "SUCCESS",
    "test.podium_shop.unique_customers_customer.ee1d5ba6ce": "SUCCESS",
    "test.podium_shop.not_null_customers_customer.a44e9fae4b": "SUCCESS",
}


@pytest.mark.timeout(TIMEOUT)
async def test_dbt_build_on_duckdb_shows_each_node_as_a_task_run(
    h: Harness, dbt_cache: None
) -> None:
    files = await asyncio.to_thread(input_files)
    execution = await h.run(
        f"""
id: dbt
namespace: test
tasks:
  - id: dbt
    type: io.kestra.plugin.dbt.cli.DbtCLI
    inputFiles:
{files}
    profiles: |
      podium_shop:
        target: dev
        outputs:
          dev:
            type: duckdb
            path: "{{{{ workingDir }}}}/shop.duckdb"
    commands:
      - dbt build
""",
    )
    assert execution.state.current == State.SUCCESS, await h.logs(execution)
    found = children(execution, "dbt")
    assert {k.rsplit(".", 1)[0] if k.startswith("test.") else k: v for k, v in found.items()} == {
        k.rsplit(".", 1)[0] if k.startswith("test.") else k: v for k, v in NODES.items()
    }
    dbt_run = next(tr for tr in execution.task_runs if tr.task_id == "dbt")
    assert "run_results.json" in dbt_run.outputs["outputFiles"]
    logs = await h.logs(execution)
    assert any(line.startswith("model.podium_shop.customers => success") for line in logs)


@pytest.mark.timeout(TIMEOUT)
async def test_a_failing_model_is_a_failed_task_run_on_postgres(
    h: Harness, dbt_cache: None, postgres_dsn: str
) -> None:
    """The legacy Build task on PostgreSQL; a model whose SQL fails makes its own task run
    FAILED, the one depending on it SKIPPED, and the dbt task FAILED."""
    files = await asyncio.to_thread(input_files)
    broken = "      models/broken.sql: |\n        select * from nowhere_at_all\n"
    after = (
        "      models/after_broken.sql: |\n"
        "        {% raw %}select * from {{ ref('broken') }}{% endraw %}\n"
    )
    port = postgres_dsn.rsplit(":", 1)[1].split("/")[0]
    execution = await h.run(
        f"""
id: dbt
namespace: test
tasks:
  - id: build
    type: io.kestra.plugin.dbt.cli.Build
    inputFiles:
{files}
{broken}{after}
    profiles: |
      podium_shop:
        target: pg
        outputs:
          pg:
            type: postgres
            host: 127.0.0.1
            port: {port}
            user: postgres
            password: ""
            dbname: postgres
            schema: dbt_{execution_suffix()}
            threads: 2
""",
    )
    assert execution.state.current == State.FAILED
    found = children(execution, "build")
    assert found["model.podium_shop.customers"] == "SUCCESS"
    assert found["model.podium_shop.broken"] == "FAILED"
    assert found["model.podium_shop.after_broken"] == "SKIPPED"


def execution_suffix() -> str:
    import uuid

    return uuid.uuid4().hex[:8]
