"""The Docker runner's cost over the podman CLI running the same command in the same image.

Both go to one private `podman system service` (tests/services.py starts it and imports the
test image): `podman --url <socket> run --rm IMAGE python3 -c 'print(1)'` against the
runner running that command (create, attach, start, wait, remove, all over the Engine API).
Target: the runner within 1.2x the CLI.

Run: .venv/bin/python bench/docker_runner.py [runs, default 10]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import services  # noqa: E402

from daemon.sdk.context import RunContext  # noqa: E402
from tasks.scripts.docker import Docker  # noqa: E402
from tasks.scripts.runner import ScriptJob  # noqa: E402
from tests.harness import Harness  # noqa: E402

COMMAND = ["python3", "-c", "print(1)"]
TARGET = 1.2


async def cli_once(docker_host: str, image: str) -> float:
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        "podman",
        "--url",
        docker_host,
        "run",
        "--rm",
        image,
        *COMMAND,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    elapsed = time.perf_counter() - started
    assert process.returncode == 0 and out.strip() == b"1", (process.returncode, out)
    return elapsed


async def runner_once(ctx: RunContext, image: str) -> float:
    lines: list[str] = []
    job = ScriptJob(
        working_dir=await ctx.working_dir(),
        interpreter=COMMAND[:2],
        commands=COMMAND[2:],
        env={},
        on_line=lambda _, line: lines.append(line),
        image=image,
    )
    runner = Docker.model_validate(
        {"type": "io.kestra.plugin.scripts.runner.docker.Docker", "pullPolicy": "NEVER"}
    )
    started = time.perf_counter()
    result = await runner.run(job, ctx)
    elapsed = time.perf_counter() - started
    assert result.exit_code == 0 and lines == ["1"], (result, lines)
    return elapsed


async def context(h: Harness) -> RunContext:
    """The context of a real task run, for handing to the runner directly."""
    flow = await h.flow("""
        id: bench_docker
        namespace: bench
        tasks:
          - id: noop
            type: io.kestra.plugin.core.log.Log
            message: bench
    """)
    execution = await h.run(flow)
    task_run = execution.task_runs[0]
    return h.task_context(flow, execution, task_run)


async def measure(docker_host: str, image: str, runs: int) -> None:
    os.environ["DOCKER_HOST"] = docker_host
    with tempfile.TemporaryDirectory(prefix="podium-bench-") as data:
        h = await Harness.open(Path(data))
        try:
            ctx = await context(h)
            await cli_once(docker_host, image)  # warm both paths once
            await runner_once(ctx, image)
            cli, runner = [], []
            for _ in range(runs):  # interleaved, so drift hits both alike
                cli.append(await cli_once(docker_host, image))
                runner.append(await runner_once(ctx, image))
        finally:
            await h.close()
    cli_ms, runner_ms = statistics.median(cli) * 1000, statistics.median(runner) * 1000
    ratio = runner_ms / cli_ms
    print(f"podman run --rm (CLI):  median {cli_ms:7.1f} ms over {runs} runs")
    print(f"Docker runner (API):    median {runner_ms:7.1f} ms over {runs} runs")
    print(
        f"runner / CLI:           {ratio:.2f}x (target <= {TARGET}x): "
        f"{'ok' if ratio <= TARGET else 'OVER TARGET'}"
    )


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    with services.podman() as docker_host:
        image = services.ensure_python_image(docker_host)
        asyncio.run(measure(docker_host, image, runs))


if __name__ == "__main__":
    main()
