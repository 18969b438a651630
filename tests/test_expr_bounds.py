"""Issue #13 finding 3: no expression may hang, crash or starve the daemon.

Kestra evaluates jq in-process (core/.../pebble/filters/JqFilterTest.java shows the filter);
podium's libjq cannot be interrupted, so it runs in a worker process with a deadline and a
memory limit, and every other render has a deadline and size limits (daemon/expr/limits.py).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from daemon.expr import jq_worker, limits
from daemon.expr import renderer as renderer_module
from daemon.expr.renderer import Renderer
from daemon.sdk.errors import TemplateError

JQ_LOOP = "{{ {} | jq('def f: f; f') }}"
TEN_MB = "{% set s = 'x' * 9999999 %}"


@pytest.fixture
def renderer() -> Renderer:
    return Renderer()


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> Renderer:
    """A renderer whose renders have 1 s instead of 10: for the tests that reach it."""
    monkeypatch.setattr(limits, "RENDER_SECONDS", 1.0)
    return Renderer()


def failure(renderer: Renderer, template: str) -> str:
    with pytest.raises(TemplateError) as raised:
        renderer.render(template, {})
    return str(raised.value)


def test_jq_that_never_ends_fails_with_the_time_limit(
    quick: Renderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kestra JqFilterTest runs jq on maps; `def f: f; f` used to hold the daemon forever."""
    assert failure(quick, JQ_LOOP).endswith("jq: the program ran for more than 1 s")
    # the stopped worker is replaced: the next program runs
    monkeypatch.undo()  # the full 10 s again: a worker starts slowly on a busy machine
    assert quick.render("{{ {'a': 2} | jq('.a') | first }}", {}) == "2"


def test_jq_that_allocates_without_end_fails_without_killing_the_daemon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`[range(1e8)]` used to abort the whole process; now only the worker dies."""
    monkeypatch.setattr(jq_worker, "MEMORY_LIMIT", 256 << 20)
    pool = jq_worker.Pool()
    try:
        with pytest.raises(jq_worker.JqError, match=r"ran out of memory \(limit 256 MB\)"):
            pool.run('"x" * 1000000000', "null", 30)
        assert pool.run(".[0]", json.dumps([7]), 30) == [7]
    finally:
        pool.close()


def test_jq_over_a_large_range_is_bounded(quick: Renderer) -> None:
    """The issue's `jq('[range(1e8)]')`: bounded by time or memory, whichever comes first."""
    message = failure(quick, "{{ {} | jq('[range(1e8)]') | length }}")
    assert "ran for more than 1 s" in message or "ran out of memory" in message


def test_jq_errors_and_results_come_back_from_the_worker(renderer: Renderer) -> None:
    """Kestra JqFilterTest: results as a list, a bad program as an error."""
    assert renderer.render("{{ [1, 2, 3] | jq('.[] | . * 2') }}", {}) == "[2,4,6]"
    assert "syntax error" in failure(renderer, "{{ [1] | jq('.[') }}")
    assert "more than 100000 results" in failure(renderer, "{{ {} | jq('range(200000)') }}")


def test_sum_of_lists_is_linear_and_bounded(renderer: Renderer) -> None:
    """`sum(start=[])` added lists one by one (quadratic): 3x10^4 lists took 20 s."""
    many = "{{ range(30000) | map('string') | map('list') | sum(start=[]) | length }}"
    assert renderer.render(many, {}) == "138890"
    too_big = "{% set l = range(100000) | list %}{{ ([l] * 200) | sum(start=[]) | length }}"
    assert "sum makes 10100000 items, over the limit of 10000000" in failure(renderer, too_big)
    assert renderer.render("{{ ['ab', 'c'] | sum(start='') }}", {}) == "abc"
    assert renderer.render("{{ [1, 2, 3] | sum }}", {}) == "6"
    assert "cannot add int to list" in failure(renderer, "{{ [[1], 2] | sum(start=[]) }}")


def test_join_of_ten_gigabytes_is_refused_before_it_is_built(renderer: Renderer) -> None:
    """The issue's 10 GB `join`: the size is known from the parts, so nothing is built."""
    message = failure(renderer, TEN_MB + "{{ ([s] * 1000) | join | length }}")
    assert "join of texts makes 9999999000 characters, over the limit of 10000000" in message


def test_wordwrap_of_ten_megabytes_is_refused(renderer: Renderer) -> None:
    """The issue's `wordwrap(1)` on 10 MB (12 s of textwrap before)."""
    message = failure(renderer, "{% set s = 'x ' * 5000000 %}{{ s | wordwrap(1) }}")
    assert "wordwrap of a text of 10000000 characters is over the limit of 1000000" in message


def test_a_million_loop_turns_each_copying_ten_megabytes_hit_the_deadline(
    quick: Renderer,
) -> None:
    """The issue's 10^6 loop turns each building 10 MB: each turn is within the size limits,
    the whole is hours; the render's deadline ends it."""
    template = (
        TEN_MB + "{% for i in range(1000) %}{% for j in range(1000) %}"
        "{% set t = s ~ 'y' %}{% endfor %}{% endfor %}done"
    )
    assert failure(quick, template).endswith(
        "the expression ran for more than 1 s, the limit for one render"
    )


def test_recursion_that_fans_out_hits_the_deadline(quick: Renderer) -> None:
    """A macro calling itself twice per level: each call is checked against the deadline."""
    template = "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
    assert "ran for more than 1 s" in failure(quick, template + "{{ f(40) }}")


async def test_async_render_of_jq_leaves_the_loop_free(
    quick: Renderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile jq rendered from a coroutine runs in a thread: the loop keeps turning (and
    the blockbuster fixture fails this test if anything blocks it)."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    running = asyncio.create_task(ticker())
    try:
        with pytest.raises(TemplateError, match="ran for more than 1 s"):
            await quick.render_value_async({"message": JQ_LOOP}, {})
    finally:
        running.cancel()
    assert ticks > 0
    monkeypatch.undo()
    assert await quick.render_value_async("{{ [3] | jq('.[0]') | first }}", {}) == "3"
    assert await quick.evaluate_bool_async("{{ {'a': true} | jq('.a') | first }}", {})


async def test_async_render_of_a_simple_template_stays_on_the_loop(
    renderer: Renderer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The common case pays for no thread hop: nothing in it leaves the loop (the loop's time
    allowance is widened here only so that a busy test machine cannot use it up)."""
    monkeypatch.setattr(limits, "INLINE_SECONDS", 5.0)

    async def no_thread(*args: object) -> None:
        raise AssertionError("a simple template went to a thread")

    monkeypatch.setattr(renderer_module, "_in_thread", no_thread)
    variables = {"inputs": {"name": "Will"}, "items": [1, 2, 3]}
    rendered = await renderer.render_value_async(
        {"a": "Hello, {{ inputs.name }}!", "b": ["{% for i in items %}{{ i }}{% endfor %}"]},
        variables,
    )
    assert rendered == {"a": "Hello, Will!", "b": ["123"]}
    assert await renderer.evaluate_bool_async("{{ inputs.name == 'Will' }}", variables)


async def test_a_long_render_started_on_the_loop_finishes_in_a_thread(
    renderer: Renderer,
) -> None:
    """Over the loop's few milliseconds, the render starts again in a thread and finishes."""
    template = "{% for i in range(300) %}{% for j in range(300) %}{% endfor %}{% endfor %}ok"
    assert await renderer.render_value_async(template, {}) == "ok"
