"""The flow loader: Kestra YAML in, a validated `Flow` out, or every problem at once."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path as FsPath
from typing import Any, NoReturn

from pydantic import ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from daemon.flows import checks, partial
from daemon.flows.defaults import PluginDefaults, current_names, has_ref
from daemon.flows.definition import Flow, Path, PluginDefault, task_lists
from daemon.flows.deprecations import deprecations
from daemon.flows.registry import Plugins, UnknownType, default_plugins
from daemon.sdk import yamlpos
from daemon.sdk.dag import find_cycle
from daemon.sdk.errors import FlowError, Problem
from daemon.sdk.inputs import validate_input_specs
from daemon.sdk.plugin import PluginKind, Task


def load_flow_file(
    path: str | FsPath,
    plugins: Plugins | None = None,
    max_size: int | None = None,
    global_defaults: Sequence[PluginDefault] = (),
) -> Flow:
    """Read and load one flow file (blocking: call through asyncio.to_thread in the loop);
    one larger than `max_size` bytes is refused unread."""
    file = FsPath(path)
    try:
        if max_size is not None and (size := file.stat().st_size) > max_size:
            raise FlowError([Problem(str(file), 1, 1, "", too_large(size, max_size))])
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowError([Problem(str(file), 1, 1, "", f"cannot read flow file: {exc}")]) from None
    return load_flow(text, str(file), plugins, global_defaults)


def too_large(size: int, max_size: int) -> str:
    return (
        f"the flow is {size:,} bytes, over the limit of {max_size:,} "
        "(max-flow-size in podium.yaml or PODIUM_MAX_FLOW_SIZE)"
    )


def load_flow(
    text: str,
    filename: str = "<flow>",
    plugins: Plugins | None = None,
    global_defaults: Sequence[PluginDefault] = (),
) -> Flow:
    """Validate Kestra YAML into a `Flow`; raise `FlowError` listing every problem.
    `global_defaults` are the daemon's `plugin-defaults` (after the flow's own)."""
    return _Loader(text, filename, plugins or default_plugins(), global_defaults).load()


def load_plugin(
    text: str,
    kind: PluginKind,
    plugins: Plugins | None = None,
    global_defaults: Sequence[PluginDefault] = (),
) -> Any:
    """Validate one task or trigger (YAML or JSON text) as a flow would hold it, for Kestra's
    `POST /flows/validate/task|trigger`; raise `FlowError` listing every problem."""
    return _Loader(text, "<request>", plugins or default_plugins(), global_defaults).one(kind)


class _Loader:
    def __init__(
        self,
        text: str,
        filename: str,
        plugins: Plugins,
        global_defaults: Sequence[PluginDefault] = (),
    ) -> None:
        self.text = text
        self.filename = filename
        self.plugins = plugins
        self.global_defaults = global_defaults
        self.problems: list[tuple[Path, str]] = []
        # Problems inside a multi-line value: (path, message, line within the value).
        self.inner_problems: list[tuple[Path, str, int]] = []
        self.positions = yamlpos.Positions()
        self.defaults = PluginDefaults([])
        self.task_ids: set[str] = set()
        # Each plug-in mapping of the YAML (by id): what it built into, or the class that
        # refused it; and its type as written and as its class names it.
        self.built: partial.Built = {}
        self.failed: partial.Failed = {}
        self.types: dict[int, tuple[str, str]] = {}

    def load(self) -> Flow:
        try:
            raw, self.positions = yamlpos.load(self.text)
        except yamlpos.YamlProblem as exc:
            where = yamlpos.format_path(exc.path)
            raise FlowError(
                [Problem(self.filename, exc.line, exc.column, where, exc.message)]
            ) from None
        if not isinstance(raw, dict):
            raise FlowError([Problem(self.filename, 1, 1, "", "a flow must be a YAML mapping")])
        self.defaults = PluginDefaults(
            self._plugin_defaults(raw), self.global_defaults, current_names(self.plugins)
        )
        # Every property declared as a Task, Trigger or Condition (lists, maps, nested
        # models of flowables) is built by `build_plugin` as the class its `type:` names.
        context = {"defer_templates": True, "build_plugin": self._build_plugin}
        flow: Flow | None = None
        try:
            flow = Flow.model_validate(raw, context=context)
        except ValidationError as exc:
            self._add_validation_errors(exc)
        if flow is not None:
            self._check_semantics(flow)
            warnings, advice = deprecations(flow), checks.advice_in(flow, ())
        else:  # what the parts that did parse still say
            found = partial.salvage(raw, self.built, self.failed)
            self.problems += found.problems
            self.inner_problems += found.inner_problems
            warnings, advice = found.warnings, found.advice
        warnings = [*warnings, *_removed_defaults(raw)]
        located = self._located([*warnings, *advice])
        deprecated = [w.path for w in self._located(warnings)]  # in file order
        infos = partial.relocations(raw, self.types)
        if self.problems or self.inner_problems or flow is None:
            raise FlowError(
                self._sorted_problems(), warnings=located, deprecation_paths=deprecated, infos=infos
            )
        flow.source = self.text
        flow.path = self.filename
        flow.warnings = located
        flow.deprecation_paths = deprecated
        flow.infos = infos
        return flow

    def one(self, kind: PluginKind) -> Any:
        try:
            raw, self.positions = yamlpos.load(self.text)
        except yamlpos.YamlProblem as exc:
            where = yamlpos.format_path(exc.path)
            raise FlowError(
                [Problem(self.filename, exc.line, exc.column, where, exc.message)]
            ) from None
        if not isinstance(raw, dict):
            raise FlowError([Problem(self.filename, 1, 1, "", f"a {kind} must be a mapping")])
        self.defaults = PluginDefaults([], self.global_defaults, current_names(self.plugins))
        context = {"defer_templates": True, "build_plugin": self._build_plugin}
        built = None
        try:
            built = self._build_plugin(kind, raw, context)
        except ValidationError as exc:
            self._add_validation_errors(exc)
        if built is not None:
            self.inner_problems += checks.template_problems_in(built, ())
        if self.problems or self.inner_problems:
            raise FlowError(self._sorted_problems())
        return built

    # -- building plug-ins by their `type:` ---------------------------------------------

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

    def _build_plugin(self, kind: PluginKind, raw: Any, context: dict[str, Any]) -> Any:
        """The plug-in `raw` describes, as the registered class of its `type:`; a
        ValidationError (located inside `raw`) says everything wrong with it."""
        if not isinstance(raw, dict):
            _fail("plugin", f"expected a mapping with 'id' and 'type', got {raw!r}", raw)
        type_name = raw.get("type")
        if not isinstance(type_name, str):
            _fail("plugin", "missing required property 'type'", raw)
        extra: list[InitErrorDetails] = []
        if kind == "task":
            task_id = raw.get("id")
            if isinstance(task_id, str):
                if task_id in self.task_ids:
                    extra.append(_error("duplicate", f"duplicate task id '{task_id}'", ("id",)))
                self.task_ids.add(task_id)
        try:
            cls: type[Any] = getattr(self.plugins, f"{kind}s").get(type_name)
        except UnknownType as exc:
            _fail("unknown_type", str(exc), type_name, ("type",), extra)
        self.types[id(raw)] = (type_name, cls.types[0])
        data = raw
        if self.defaults or has_ref(raw):
            data, found = self.defaults.apply(cls.types[0], type_name, dict(raw))
            extra += [_error("plugin_defaults_ref", message, path) for path, message in found]
        try:
            built = cls.model_validate(data, context=context)
        except ValidationError as exc:
            self.failed[id(raw)] = (raw, cls)
            raise ValidationError.from_exception_data(
                cls.__name__, [*extra, *(_own(err, cls) for err in exc.errors())]
            ) from None
        if extra:
            self.failed[id(raw)] = (raw, cls)
            raise ValidationError.from_exception_data(cls.__name__, extra)
        self.built[id(raw)] = (raw, built)
        return built

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
        ids = [spec.id for spec in flow.inputs]
        for i, spec in enumerate(flow.inputs):  # Kestra's FlowValidator on dotted input ids
            for other in ids:
                if other.startswith(spec.id + "."):
                    self.problems.append(
                        (
                            ("inputs", i, "id"),
                            f"Input path '{spec.id}' conflicts with '{other}'; one cannot be "
                            "nested under the other.",
                        )
                    )
        for key, value in flow.labels.items():
            if key.startswith("system.") and key != "system.readOnly":
                self.problems.append(
                    (
                        ("labels", key),
                        "System labels can only be set by Kestra itself, offending label: "
                        f"{key}={value}",
                    )
                )
        self.problems += checks.recursion_problems(flow)
        self.problems += checks.reference_problems(flow)
        self.inner_problems += checks.template_problems(flow)

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

    def _add_validation_errors(self, exc: ValidationError) -> None:
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            if err["type"] == "missing":
                loc = loc[:-1]  # a missing property has no position: point at its parent
            self.problems.append((loc, _message(err, Flow if len(loc) == 1 else None)))

    def _sorted_problems(self) -> list[Problem]:
        out = self._located(self.problems)
        for path, message, inner in self.inner_problems:
            line, col = self.positions.of(path)
            if inner > 1:  # a line of a multi-line value: the value starts on the next line
                line, col = line + inner, 1
            out.append(Problem(self.filename, line, col, yamlpos.format_path(path), message))
        out.sort(key=lambda p: (p.line, p.column))
        return out

    def _located(self, items: list[tuple[Path, str]]) -> list[Problem]:
        out = []
        for path, message in items:
            line, col = self.positions.of(path)
            out.append(Problem(self.filename, line, col, yamlpos.format_path(path), message))
        out.sort(key=lambda p: (p.line, p.column))
        return out


def _error(kind: str, message: str, loc: Path = (), value: Any = None) -> InitErrorDetails:
    return {"type": PydanticCustomError(kind, message), "loc": loc, "input": value}


def _removed_defaults(raw: dict[str, Any]) -> list[tuple[Path, str]]:
    """Kestra 2.0 removed plugin defaults from flows (and `forced` with them): they still
    apply here, with a warning, as 1.x flows carry them."""
    if "taskDefaults" in raw:
        return [(("taskDefaults",), "'taskDefaults' is deprecated; use 'pluginDefaults'")]
    if "pluginDefaults" not in raw:
        return []
    found: list[tuple[Path, str]] = [
        (
            ("pluginDefaults",),
            "'pluginDefaults' is deprecated; Kestra 2.0 removed it: set the values on the "
            "tasks (or in 'variables')",
        )
    ]
    defaults = raw["pluginDefaults"]
    for i, default in enumerate(defaults if isinstance(defaults, list) else []):
        if isinstance(default, dict) and "forced" in default:
            found.append(
                (("pluginDefaults", i, "forced"), "'forced' is deprecated; Kestra 2.0 removed it")
            )
    return found


def _fail(
    kind: str,
    message: str,
    value: Any,
    loc: Path = (),
    also: Sequence[InitErrorDetails] = (),
) -> NoReturn:
    raise ValidationError.from_exception_data("plugin", [*also, _error(kind, message, loc, value)])


def _own(err: ErrorDetails, cls: type[Any]) -> InitErrorDetails:
    """One error of a plug-in, kept as it is, but for an unknown property of the plug-in
    itself, which gets its hint now that the class it belongs to is known."""
    message = err["msg"]
    if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
        message = _message(err, cls)
    return {"type": PydanticCustomError(err["type"], message), "loc": err["loc"],
            "input": err.get("input")}  # fmt: skip


def _message(err: Any, cls: type[Any] | None) -> str:
    kind, loc = err["type"], err["loc"]
    name = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        if str(err["msg"]).startswith("unknown property"):
            return str(err["msg"])  # a plug-in's own, with its hint
        hint = ""
        if cls is not None:
            names = [f.alias or n for n, f in cls.model_fields.items()]
            close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"unknown property '{name}'{hint}"
    if kind == "missing":
        return f"missing required property '{name}'"
    if kind in ("plugin", "unknown_type", "duplicate", "plugin_defaults_ref"):
        return str(err["msg"])
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
