"""The flow model and its loader: Kestra YAML in, a validated `Flow` out, or every error at once."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal, Union

from pydantic import AliasChoices, BaseModel, Field, ValidationError

from daemon.registry import Plugins, UnknownType, default_plugins
from daemon.sdk import yamlpos
from daemon.sdk.errors import FlowError, Problem
from daemon.sdk.inputs import InputSpec, validate_input_specs
from daemon.sdk.plugin import Condition, Task, Trigger
from daemon.sdk.properties import Dynamic, Labels, Model

FLOW_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$"
NAMESPACE_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"

Path = yamlpos.Path
_BUILT = (Task, Condition)  # plug-ins built through the registry wherever they are nested


class Concurrency(Model):
    limit: int = Field(ge=1)
    behavior: Literal["QUEUE", "CANCEL", "FAIL"] = "QUEUE"


class PluginDefault(Model):
    type: str
    forced: bool = False
    values: dict[str, Any]


class FlowOutput(Model):
    id: str
    type: str = "STRING"
    value: Annotated[Any, Dynamic]
    description: str | None = None
    display_name: str | None = None
    required: bool = True


class Flow(Model):
    """A loaded, valid flow. `source` is the YAML text it came from."""

    id: str = Field(pattern=FLOW_ID_PATTERN)
    namespace: str = Field(pattern=NAMESPACE_PATTERN)
    description: str | None = None
    labels: Labels = Field(default_factory=dict)
    inputs: list[InputSpec] = Field(default_factory=list)
    variables: dict[str, Any] = Field(default_factory=dict)
    tasks: list[Task] = Field(min_length=1)
    errors: list[Task] = Field(default_factory=list)
    finally_: list[Task] = Field(default_factory=list, alias="finally")
    # Kestra 1.x: run once the final state is known; they never change it.
    after_execution: list[Task] = Field(default_factory=list)
    outputs: list[FlowOutput] = Field(default_factory=list)
    triggers: list[Trigger] = Field(default_factory=list)
    concurrency: Concurrency | None = None
    plugin_defaults: list[PluginDefault] = Field(
        default_factory=list, validation_alias=AliasChoices("pluginDefaults", "taskDefaults")
    )
    disabled: bool = False
    revision: int | None = None
    source: str = Field(default="", exclude=True)
    path: str = Field(default="", exclude=True)

    @property
    def uid(self) -> tuple[str, str]:
        return (self.namespace, self.id)

    def all_tasks(self) -> Iterator[Task]:
        """Every task of the flow, nested ones included."""
        for tasks, _ in task_lists(self):
            yield from tasks

    def task_by_id(self, task_id: str) -> Task | None:
        return next((t for t in self.all_tasks() if t.id == task_id), None)


_TASK_LISTS = ("tasks", "errors", "finally", "afterExecution")


def load_flow_file(path: str | FsPath, plugins: Plugins | None = None) -> Flow:
    """Read and load one flow file (blocking: call through asyncio.to_thread in the loop)."""
    file = FsPath(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError([Problem(str(file), 1, 1, "", f"cannot read flow file: {exc}")]) from None
    return load_flow(text, str(file), plugins)


def load_flow(text: str, filename: str = "<flow>", plugins: Plugins | None = None) -> Flow:
    """Validate Kestra YAML into a `Flow`; raise `FlowError` listing every problem."""
    return _Loader(text, filename, plugins or default_plugins()).load()


class _Loader:
    def __init__(self, text: str, filename: str, plugins: Plugins) -> None:
        self.text = text
        self.filename = filename
        self.plugins = plugins
        self.problems: list[tuple[Path, str]] = []
        self.positions = yamlpos.Positions()
        self.defaults: list[PluginDefault] = []
        self.pruned: set[Path] = set()
        self.task_ids: set[str] = set()

    def load(self) -> Flow:
        try:
            raw, self.positions = yamlpos.load(self.text)
        except yamlpos.YamlProblem as exc:
            raise FlowError(
                [
                    Problem(
                        self.filename,
                        exc.line,
                        exc.column,
                        yamlpos.format_path(exc.path),
                        exc.message,
                    )
                ]
            ) from None
        if not isinstance(raw, dict):
            raise FlowError([Problem(self.filename, 1, 1, "", "a flow must be a YAML mapping")])
        data = dict(raw)
        self.defaults = self._plugin_defaults(data)
        for key in _TASK_LISTS:
            if isinstance(data.get(key), list):
                data[key] = self._build_list(data[key], (key,), self._task)
        if isinstance(data.get("triggers"), list):
            data["triggers"] = self._build_list(data["triggers"], ("triggers",), self._trigger)
        flow: Flow | None = None
        try:
            flow = Flow.model_validate(data, context={"defer_templates": True})
        except ValidationError as exc:
            self._add_validation_errors(exc, (), Flow)
        if flow is not None:
            self._check_semantics(flow)
        if self.problems or flow is None:
            raise FlowError(self._sorted_problems())
        flow.source = self.text
        flow.path = self.filename
        return flow

    # -- building plug-ins -------------------------------------------------------------

    def _plugin_defaults(self, data: dict[str, Any]) -> list[PluginDefault]:
        key = "pluginDefaults" if "pluginDefaults" in data else "taskDefaults"
        raw = data.get(key)
        if not isinstance(raw, list):
            return []
        out = []
        for item in raw:
            try:
                out.append(PluginDefault.model_validate(item))
            except ValidationError:
                pass  # reported when the whole flow is validated
        return out

    def _build_list(
        self, items: list[Any], path: Path, build: Callable[[Any, Path], Any]
    ) -> list[Any]:
        built = [build(item, path + (i,)) for i, item in enumerate(items)]
        return self._without_failures(built, path)

    def _without_failures(self, built: list[Any], path: Path) -> list[Any]:
        """Drop plug-ins that failed to build (already reported) and remember the list, so
        that "list too short" is not reported about it as well."""
        kept = [b for b in built if b is not None]
        if len(kept) != len(built):
            self.pruned.add(path)
        return kept

    def _lookup(self, raw: Any, path: Path, registry: Any) -> type[Any] | None:
        if not isinstance(raw, dict):
            self.problems.append((path, f"expected a mapping with 'id' and 'type', got {raw!r}"))
            return None
        type_name = raw.get("type")
        if not isinstance(type_name, str):
            self.problems.append((path, "missing required property 'type'"))
            return None
        try:
            cls: type[Any] = registry.get(type_name)
        except UnknownType as exc:
            self.problems.append((path + ("type",), str(exc)))
            return None
        return cls

    def _task(self, raw: Any, path: Path) -> Task | None:
        task_id = raw.get("id") if isinstance(raw, dict) else None
        if isinstance(task_id, str):
            if task_id in self.task_ids:
                self.problems.append((path + ("id",), f"duplicate task id '{task_id}'"))
            self.task_ids.add(task_id)
        cls = self._lookup(raw, path, self.plugins.tasks)
        if cls is None:
            return None
        data = self._build_nested(
            cls, self._apply_defaults(cls.types[0], raw["type"], dict(raw)), path
        )
        task: Task | None = self._validate(cls, data, path)
        return task

    def _trigger(self, raw: Any, path: Path) -> Trigger | None:
        cls = self._lookup(raw, path, self.plugins.triggers)
        if cls is None:
            return None
        data = self._build_nested(cls, dict(raw), path)
        trigger: Trigger | None = self._validate(cls, data, path)
        return trigger

    def _condition(self, raw: Any, path: Path) -> Condition | None:
        cls = self._lookup(raw, path, self.plugins.conditions)
        if cls is None:
            return None
        condition: Condition | None = self._validate(cls, dict(raw), path)
        return condition

    def _build_nested(self, cls: type[Any], data: dict[str, Any], path: Path) -> dict[str, Any]:
        """Build the plug-ins (tasks, conditions) nested in a plug-in's properties."""
        for name, field in cls.model_fields.items():
            alias = field.alias or name
            if alias in data and _mentions(field.annotation, _BUILT):
                data[alias] = self._children(field.annotation, data[alias], (*path, alias))
        return data

    def _validate(self, cls: type[Any], data: dict[str, Any], path: Path) -> Any:
        try:
            return cls.model_validate(data, context={"defer_templates": True})
        except ValidationError as exc:
            self._add_validation_errors(exc, path, cls)
            return None

    def _apply_defaults(self, canonical: str, written: str, data: dict[str, Any]) -> dict[str, Any]:
        """pluginDefaults match by type prefix, on the name written or the canonical one."""
        for default in self.defaults:
            if not (written.startswith(default.type) or canonical.startswith(default.type)):
                continue
            for key, value in default.values.items():
                if default.forced or key not in data:
                    data[key] = value
                elif isinstance(value, dict) and isinstance(data[key], dict):
                    data[key] = {**value, **data[key]}
        return data

    def _children(self, annotation: Any, value: Any, path: Path) -> Any:
        """Build the tasks nested in a flowable's property, following its type annotation."""
        annotation = _unwrap(annotation)
        origin = typing.get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, Task):
            return self._task(value, path) if isinstance(value, dict) else value
        if isinstance(annotation, type) and issubclass(annotation, Condition):
            return self._condition(value, path) if isinstance(value, dict) else value
        if origin in (list, Sequence) and isinstance(value, list):
            (item,) = typing.get_args(annotation)
            built = [self._children(item, v, path + (i,)) for i, v in enumerate(value)]
            return self._without_failures(built, path)
        if origin is dict and isinstance(value, dict):
            item = typing.get_args(annotation)[1]
            return {k: self._children(item, v, path + (k,)) for k, v in value.items()}
        if _is_model(annotation) and isinstance(value, dict):
            return self._build_nested(annotation, dict(value), path)
        return value

    # -- checks that need the whole flow ------------------------------------------------

    def _check_semantics(self, flow: Flow) -> None:
        trigger_ids: set[str] = set()
        for i, trigger in enumerate(flow.triggers):
            if trigger.id in trigger_ids:
                self.problems.append(
                    (("triggers", i, "id"), f"duplicate trigger id '{trigger.id}'")
                )
            trigger_ids.add(trigger.id)
        for tasks, path in task_lists(flow):
            self._check_depends_on(tasks, path)
        for sub_path, message in validate_input_specs(flow.inputs):
            self.problems.append((("inputs", *sub_path), message))

    def _check_depends_on(self, tasks: Sequence[Task], path: Path) -> None:
        ids = {t.id for t in tasks}
        for i, task in enumerate(tasks):
            for j, dep in enumerate(task.depends_on):
                if dep not in ids:
                    where = path + (i, "dependsOn", j)
                    if dep == task.id:
                        self.problems.append((where, f"task '{task.id}' depends on itself"))
                    else:
                        self.problems.append(
                            (
                                where,
                                f"dependsOn names '{dep}', which is not a "
                                f"task of this list ({', '.join(sorted(ids))})",
                            )
                        )
        cycle = find_cycle({t.id: [d for d in t.depends_on if d in ids] for t in tasks})
        if cycle:
            index = next(i for i, t in enumerate(tasks) if t.id == cycle[0])
            self.problems.append(
                (path + (index, "dependsOn"), f"dependsOn cycle: {' -> '.join([*cycle, cycle[0]])}")
            )

    # -- error reporting ----------------------------------------------------------------

    def _add_validation_errors(self, exc: ValidationError, path: Path, cls: type[Any]) -> None:
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            if path + loc in self.pruned:
                continue  # a plug-in inside failed to build, and was reported
            if err["type"] == "missing":
                loc = loc[:-1]  # a missing property has no position: point at its parent
            self.problems.append((path + loc, _message(err, cls)))

    def _sorted_problems(self) -> list[Problem]:
        out = []
        for path, message in self.problems:
            line, col = self.positions.of(path)
            out.append(Problem(self.filename, line, col, yamlpos.format_path(path), message))
        out.sort(key=lambda p: (p.line, p.column))
        return out


def _message(err: Any, cls: type[Any]) -> str:
    kind, loc = err["type"], err["loc"]
    name = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        hint = ""
        if len(loc) == 1 and isinstance(cls, type) and issubclass(cls, BaseModel):
            names = [f.alias or n for n, f in cls.model_fields.items()]
            close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown property '{name}'{hint}"
    if kind == "missing":
        return f"missing required property '{name}'"
    message = str(err["msg"]).removeprefix("Value error, ")
    shown = repr(err.get("input"))
    # A whole mapping, or a long value, is noise next to a position that points at it.
    if (
        "input" in err
        and kind not in ("model_type", "dict_type", "list_type")
        and not isinstance(err["input"], dict)
        and len(shown) <= 60
    ):
        return f"{message} (got {shown})"
    return message


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _mentions(annotation: Any, target: type | tuple[type, ...]) -> bool:
    """Does a type annotation contain `target` (Task, Condition) anywhere inside it?"""
    if isinstance(annotation, type) and issubclass(annotation, target):
        return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return any(_mentions(f.annotation, target) for f in annotation.model_fields.values())
    return any(_mentions(arg, target) for arg in typing.get_args(annotation))


def task_lists(flow: Flow) -> Iterator[tuple[Sequence[Task], Path]]:
    """Every list of sibling tasks in the flow, nested ones included, with its property path."""
    for tasks, path in (
        (flow.tasks, ("tasks",)),
        (flow.errors, ("errors",)),
        (flow.finally_, ("finally",)),
        (flow.after_execution, ("afterExecution",)),
    ):
        yield from _lists_in(tasks, path)


def _lists_in(value: Any, path: Path) -> Iterator[tuple[Sequence[Task], Path]]:
    if isinstance(value, Task):
        value = [value]
    if isinstance(value, list) and value and all(isinstance(v, Task) for v in value):
        yield value, path
        for i, task in enumerate(value):
            for name, field in type(task).model_fields.items():
                if _mentions(field.annotation, Task):
                    yield from _lists_in(getattr(task, name), path + (i, field.alias or name))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _lists_in(item, path + (i,))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _lists_in(item, path + (key,))
    elif isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            if _mentions(field.annotation, Task):
                yield from _lists_in(getattr(value, name), path + (field.alias or name,))


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a list of ids, or None (iterative DFS, colours)."""
    colour: dict[str, int] = {}
    for start in edges:
        if colour.get(start):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(edges.get(start, [])))]
        colour[start] = 1
        trail = [start]
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = 2
                stack.pop()
                trail.pop()
            elif colour.get(nxt) == 1:
                return trail[trail.index(nxt) :]
            elif not colour.get(nxt):
                colour[nxt] = 1
                trail.append(nxt)
                stack.append((nxt, iter(edges.get(nxt, []))))
    return None
