"""Renders Kestra's Pebble expressions with a sandboxed Jinja2 environment.

Flows written for Kestra must run unchanged, so the Pebble-only operators are rewritten first
(`daemon.pebble`), values print the way Pebble prints them, and Kestra's filters and functions
exist under their Kestra names (`daemon.expr_filters`). A missing variable is an error naming
what is missing, never an empty string, yet `is defined`, `??` and `default` can still test a
whole path such as `outputs.task.value` for it.

Only the template is ever rendered: a value coming from outside (a webhook body, a file name)
that contains `{{ }}` is printed as text unless the flow asks for `render(...)` explicitly.
What a template may build is bounded (`daemon.expr_limits`): a render ends with a
`TemplateError`, never with a hung daemon or an exhausted memory.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from datetime import datetime
from typing import Any, NoReturn

import jinja2
from jinja2 import (
    ChainableUndefined,
    StrictUndefined,
    Template,
    TemplateSyntaxError,
    Undefined,
    UndefinedError,
    nodes,
)
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing, pass_context

from daemon.expr import calendar, crypto, javadate, kestra_functions, operators
from daemon.expr import limits as expr_limits
from daemon.expr.conversions import to_text
from daemon.expr.filters import FILTERS, FUNCTIONS, TESTS
from daemon.expr.pebble import rewrite
from daemon.sdk.clock import Clock
from daemon.sdk.errors import PodiumError, TemplateError

Functions = Mapping[str, Callable[..., Any]]

# Distinct templates kept compiled: a flow has a few hundred at most, a daemon a few dozen flows.
CACHE_SIZE = 4096
# Names Jinja defines for every template and Pebble does not.
JINJA_ONLY_GLOBALS = ("lipsum", "dict", "cycler", "joiner", "namespace")
# Renders running at once off the event loop (those that need more than a few milliseconds).
RENDER_THREADS = 4
# How many times `render()` may re-render its result, and how deeply renders may nest.
MAX_RENDER_ROUNDS = 10
_SNIPPET_LENGTH = 200
_MAX_KEYS_SHOWN = 20
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "", "null", "none"})
_depth: ContextVar[int] = ContextVar("render_depth", default=0)


class StrictChainUndefined(ChainableUndefined, StrictUndefined):
    """A missing value: chainable, so tests and `??` work on a whole path; strict, so printing,
    comparing, looping over or truth-testing it fails with a message naming what is missing."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        name, obj = self._undefined_name, self._undefined_obj
        if self._undefined_hint:
            return self._undefined_hint
        if obj is missing:
            return f"{name!r} is undefined"
        if isinstance(obj, Mapping):
            keys = ", ".join(str(key) for key in list(obj)[:_MAX_KEYS_SHOWN])
            more = ", ..." if len(obj) > _MAX_KEYS_SHOWN else ""
            known = f"available keys: {keys}{more}" if keys else "no keys available"
            return f"{name!r} is undefined ({known})"
        if isinstance(obj, Sequence) and not isinstance(obj, str) and isinstance(name, int):
            return f"index {name} is out of range (length {len(obj)})"
        return f"{type(obj).__name__!r} object has no attribute {name!r}"

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:
        if self._undefined_obj is missing and not self._undefined_hint:
            raise UndefinedError(f"unknown function {self._undefined_name!r}")
        self._fail_with_undefined_error()


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox, with Kestra's view of maps and of missing functions, and bounds on work."""

    intercepted_binops = expr_limits.INTERCEPTED_BINOPS

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return expr_limits.binop(operator, left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        expr_limits.check_call(obj, args, kwargs)
        return super().call(context, obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Keys win over dict methods: an input named `items` is `inputs.items`, as in Kestra.
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        # `~` prints its operands as Pebble does (`true`, not `True`): each goes through the
        # `string` filter, which also holds when Jinja folds a constant at compile time.
        tree = super()._parse(source, name, filename)
        for concat in tree.find_all(nodes.Concat):
            concat.nodes = [
                nodes.Filter(operand, "string", [], [], None, None, lineno=operand.lineno)
                for operand in concat.nodes
            ]
        operators.InOperators().visit(tree)
        expr_limits.Bounds().visit(tree)
        return tree

    def is_safe_callable(self, obj: Any) -> bool:
        # Probing a missing function's flags would fail on truth-testing it; let the call
        # itself fail instead, saying which function is unknown.
        return isinstance(obj, Undefined) or super().is_safe_callable(obj)


class Renderer:
    """Renders flow properties; one per process, shared by every execution and thread."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock or Clock()
        env = _Environment(
            undefined=StrictChainUndefined,
            finalize=to_text,
            autoescape=False,
            keep_trailing_newline=True,
        )
        env.filters.update(FILTERS)
        env.filters = expr_limits.bounded_filters(env.filters)
        env.filters[expr_limits.CHECK_LENGTH] = expr_limits.checked_concat
        env.filters[expr_limits.COUNT_TURNS] = expr_limits.counted
        env.tests.update(TESTS)
        # Jinja's own globals are not Pebble's: in Kestra `{{ namespace }}` or `dict(a=1)` is
        # an undefined name, not an object of the template engine (and `lipsum(10**6)` is
        # minutes of work). `range` is replaced by Pebble's below.
        for name in JINJA_ONLY_GLOBALS:
            del env.globals[name]

        @pass_context
        def render(context: Context, value: Any, recursive: bool = True) -> Any:
            return self._render_again(value, context.get_all(), recursive=recursive)

        @pass_context
        def render_once(context: Context, value: Any) -> Any:
            return self._render_again(value, context.get_all(), recursive=False)

        env.globals.update(
            null=None,
            range=operators.pebble_range,
            now=self._now,
            render=render,
            renderOnce=render_once,
            **FUNCTIONS,
            **kestra_functions.FUNCTIONS,
            **calendar.FUNCTIONS,
            **crypto.FUNCTIONS,
            **operators.GLOBALS,
        )
        self._env = env
        self._globals = dict(env.globals)
        self._template: Callable[[str], Template] = functools.lru_cache(maxsize=CACHE_SIZE)(
            self._compile
        )

    def render(
        self, template: str, variables: Mapping[str, Any], functions: Functions | None = None
    ) -> str:
        """The rendered text; a string with no `{{`/`{%` is returned without touching Jinja."""
        if "{{" not in template and "{%" not in template:
            return template
        if expr_limits.current() is not None:
            return self._render(template, variables, functions)
        token = expr_limits.enter(_budget())
        try:
            return self._render(template, variables, functions)
        finally:
            expr_limits.leave(token)

    def render_value(
        self, value: Any, variables: Mapping[str, Any], functions: Functions | None = None
    ) -> Any:
        """Every string inside lists and maps rendered (map keys too); other values as they are.

        Bounded in time as one render; on the event loop's thread the bound is short
        (`limits.ON_LOOP_SECONDS`): async callers use `render_value_async` instead.
        """
        if isinstance(value, str) and "{{" not in value and "{%" not in value:
            return value
        token = expr_limits.enter(_budget())
        try:
            return self._value(value, variables, functions)
        finally:
            expr_limits.leave(token)

    async def render_value_async(
        self, value: Any, variables: Mapping[str, Any], functions: Functions | None = None
    ) -> Any:
        """`render_value` without holding the event loop: tried on the loop for a few
        milliseconds, and run again in a thread (full deadline, jq allowed) if it needs more."""
        if isinstance(value, str) and "{{" not in value and "{%" not in value:
            return value
        token = expr_limits.enter(expr_limits.Budget(expr_limits.INLINE_SECONDS, inline=True))
        try:
            return self._value(value, variables, functions)
        except expr_limits.OffLoop:
            pass
        finally:
            expr_limits.leave(token)
        return await _in_thread(self.render_value, value, variables, functions)

    def evaluate_bool(
        self, template: str | bool, variables: Mapping[str, Any], functions: Functions | None = None
    ) -> bool:
        """A condition (`If`, `runIf`): renders to true/1/yes or false/0/null/none/nothing."""
        if isinstance(template, bool):
            return template
        return _truth(template, self.render(template, variables, functions))

    async def evaluate_bool_async(
        self, template: str | bool, variables: Mapping[str, Any], functions: Functions | None = None
    ) -> bool:
        """`evaluate_bool` without holding the event loop (as `render_value_async`)."""
        if isinstance(template, bool):
            return template
        return _truth(template, await self.render_value_async(template, variables, functions))

    def _render(
        self, template: str, variables: Mapping[str, Any], functions: Functions | None
    ) -> str:
        try:
            compiled = self._template(template)
            # One copy of globals, variables and functions (`generate` makes two).
            scope = {**self._globals, **variables, **(functions or {})}
            context = compiled.new_context(scope, shared=True)
            try:
                return _joined(compiled.root_render_func(context))
            except Exception:
                self._env.handle_exception()  # raises it again, its traceback in template lines
                raise
        except expr_limits.OffLoop:
            raise
        except Exception as exc:
            raise TemplateError(
                f'cannot render "{_snippet(template)}": {_reason(exc, template)}'
            ) from exc

    def _value(self, value: Any, variables: Mapping[str, Any], functions: Functions | None) -> Any:
        if isinstance(value, str):
            return self.render(value, variables, functions)
        if isinstance(value, Mapping):
            return {
                self._value(k, variables, functions): self._value(v, variables, functions)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self._value(v, variables, functions) for v in value]
        if isinstance(value, tuple):
            return tuple(self._value(v, variables, functions) for v in value)
        return value

    def _compile(self, source: str) -> Template:
        # Jinja folds constant expressions while compiling (`{} | jq(...)` included): under a
        # short on-loop budget, folding what is slow or needs jq is given up, left to the render.
        token = expr_limits.enter(expr_limits.Budget(expr_limits.INLINE_SECONDS, inline=True))
        try:
            template = self._env.from_string(rewrite(source))
        finally:
            expr_limits.leave(token)
        # Jinja chains the template's globals to the environment's and copies the chain into
        # every render's context, key by key through ChainMap: a plain dict copies 10x faster
        # (one, shared: the environment's globals are set once, in __init__).
        template.globals = self._globals
        return template

    def _now(self, timeZone: str | None = None) -> datetime:
        moment = self._clock.now()
        if timeZone is None:
            return moment
        try:
            return moment.astimezone(javadate.zone(timeZone))
        except ValueError as exc:
            raise TemplateError(f"now: {exc}") from exc

    def _render_again(self, value: Any, variables: Mapping[str, Any], *, recursive: bool) -> Any:
        """`render()`: a string from the variables rendered as a template, until it settles."""
        if not isinstance(value, str):
            return value
        depth = _depth.get()
        if depth >= MAX_RENDER_ROUNDS:
            raise TemplateError(f"render() nested more than {MAX_RENDER_ROUNDS} levels deep")
        token = _depth.set(depth + 1)
        try:
            for _ in range(MAX_RENDER_ROUNDS):
                rendered = self.render(value, variables)
                if not recursive or rendered == value:
                    return rendered
                value = rendered
        finally:
            _depth.reset(token)
        raise TemplateError(f"render() still changing after {MAX_RENDER_ROUNDS} rounds")


_threads: ThreadPoolExecutor | None = None
_threads_lock = threading.Lock()


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a render in one of the renderer's own threads: renders that take their full
    deadline must not fill the loop's default executor, which the store's reads wait for."""
    global _threads
    with _threads_lock:
        if _threads is None:
            _threads = ThreadPoolExecutor(RENDER_THREADS, thread_name_prefix="podium-render")
    return await asyncio.get_running_loop().run_in_executor(_threads, fn, *args)


def _budget() -> expr_limits.Budget:
    """A render's bound: the full one in a thread, a short one on the event loop's thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return expr_limits.Budget(expr_limits.RENDER_SECONDS)
    return expr_limits.Budget(expr_limits.ON_LOOP_SECONDS)


def _truth(template: str, rendered: str) -> bool:
    result = rendered.strip()
    if result.lower() in _TRUE:
        return True
    if result.lower() in _FALSE:
        return False
    raise TemplateError(
        f'cannot use "{_snippet(template)}" as a condition: it gave '
        f'"{_snippet(result)}", expected true or false'
    )


@functools.lru_cache(maxsize=1)
def _syntax_environment() -> _Environment:
    return _Environment(undefined=StrictChainUndefined)


def syntax_error(template: str) -> tuple[int, str] | None:
    """(line inside the template, reason) when a template does not parse (an unclosed
    `{{`...), else None; nothing is rendered."""
    if "{{" not in template and "{%" not in template:
        return None  # rendered as it is (`render`), whatever else it holds
    try:
        _syntax_environment().parse(rewrite(template))
    except TemplateSyntaxError as exc:
        return exc.lineno, exc.message or str(exc)
    return None


def _joined(pieces: Iterator[str]) -> str:
    out: list[str] = []
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > expr_limits.MAX_OUTPUT:
            raise TemplateError(
                f"the text rendered is over the limit of {expr_limits.MAX_OUTPUT} characters"
            )
        out.append(piece)
    return "".join(out)


def _snippet(text: str) -> str:
    """The template as one line, cut short: messages are one log line each."""
    line = text.replace("\n", "\\n")
    return line if len(line) <= _SNIPPET_LENGTH else line[:_SNIPPET_LENGTH] + "..."


def _reason(exc: Exception, template: str) -> str:
    line: int | None
    if isinstance(exc, TemplateSyntaxError):
        reason, line = exc.message or str(exc), exc.lineno
    else:
        known = isinstance(exc, PodiumError | jinja2.TemplateError)
        reason = str(exc) if known else f"{type(exc).__name__}: {exc}"
        line = _template_line(exc)
    if line is not None and "\n" in template.rstrip("\n"):
        reason += f" (line {line})"
    return reason


def _template_line(exc: BaseException) -> int | None:
    """The template line being run when `exc` was raised (Jinja maps its frames to lines)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
