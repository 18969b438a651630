"""Checks of a loaded flow that need more than one property: templates that do not parse,
references Pebble reads as subtractions, and flows that start themselves.

Each returns (property path, message) pairs; the loader turns them into file:line:col.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel

from daemon.flows.definition import Flow, Path, task_lists
from daemon.sdk import yamlpos
from daemon.sdk.capabilities import Advises, StartsFlows
from daemon.sdk.errors import Problem
from daemon.sdk.plugin import Task
from daemon.sdk.properties import EXPRESSION, Dynamic

Uid = tuple[str, str]


def template_problems(flow: Flow) -> list[tuple[Path, str, int]]:
    """(path, message, line inside the value) of every templated property that does not
    parse: an unclosed `{{` fails at load, not when the task runs."""
    return template_problems_in(flow, ())


def template_problems_in(model: BaseModel, path: Path) -> list[tuple[Path, str, int]]:
    """`template_problems` of one part of a flow (a task, an output) found at `path`."""
    return _syntax_problems(_templated_strings(model, path))


def raw_template_problems(
    cls: type[BaseModel], raw: Mapping[str, Any], path: Path
) -> list[tuple[Path, str, int]]:
    """The templated properties of a plug-in that did not build (another of its properties
    is wrong): its `Dynamic` properties as written, so their expressions are checked too."""
    dynamic = {f.alias or n for n, f in cls.model_fields.items() if Dynamic in f.metadata}
    texts = (
        found
        for key, value in raw.items()
        if key in dynamic
        for found in _texts(value, path + (key,))
    )
    return _syntax_problems(texts)


def _syntax_problems(texts: Iterable[tuple[Path, str]]) -> list[tuple[Path, str, int]]:
    problems = []
    for path, text in texts:
        if "{{" not in text and "{%" not in text and "{#" not in text:
            continue  # no tag opens: nothing for the parser to refuse
        # imported only for a flow that holds expressions (a literal one never needs Jinja)
        from daemon.expr.renderer import syntax_error

        found = syntax_error(text)
        if found is not None:
            line, reason = found
            problems.append((path, f"the expression does not parse: {reason}", line))
    return problems


def advice_in(value: Any, path: Path) -> list[tuple[Path, str]]:
    """(path, message) of what each plug-in inside `value` (a flow, a task) says of how
    it is written (`Advises`): warnings, not errors."""
    found: list[tuple[Path, str]] = []
    if isinstance(value, BaseModel):
        if isinstance(value, Advises):
            found += [(path, message) for message in value.advice()]
        fields = type(value).model_fields
        for name in value.model_fields_set:
            field = fields.get(name)
            if field is not None:
                found += advice_in(getattr(value, name), path + (field.alias or name,))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found += advice_in(item, path + (i,))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            found += advice_in(item, path + (key,))
    return found


def subflow_problems(flow: Flow, lookup: Callable[[str, str], Flow | None]) -> list[Problem]:
    """Kestra FlowValidationService.checkValidSubflows, as warnings located at the task:
    a flow started by id (written literally) that is not known, or is disabled."""
    found: list[Problem] = []
    positions: yamlpos.Positions | None = None
    for tasks, path in task_lists(flow):
        for i, task in enumerate(tasks):
            if not isinstance(task, StartsFlows):
                continue
            for namespace, flow_id in task.started_flows():
                other = lookup(namespace, flow_id)
                if other is not None and not other.disabled:
                    continue
                why = "not found" if other is None else "is disabled"
                if positions is None:
                    positions = _positions(flow.source)
                line, column = positions.of(path + (i,)) if positions else (1, 1)
                found.append(
                    Problem(
                        flow.path or "<flow>",
                        line,
                        column,
                        yamlpos.format_path(path + (i,)),
                        f"The subflow '{flow_id}' {why} in namespace '{namespace}'.",
                    )
                )
    return found


def _positions(source: str) -> yamlpos.Positions | None:
    try:
        return yamlpos.load(source)[1]
    except yamlpos.YamlProblem:
        return None


def reference_problems(flow: Flow) -> list[tuple[Path, str]]:
    """Kestra's FlowValidator: `inputs.my-input` and `outputs.my-task` are subtractions in an
    expression; keys with dashes need brackets (`inputs['my-input']`).

    Only the shapes Kestra's patterns match are refused: a whole `{{ inputs.my-input }}`,
    and `{{ outputs.my-task.attribute ... }}` opening an expression. A dashed name further
    inside an expression (`{{ outputs.a ?? outputs.my-task }}`) or naming no task of the
    flow saves in Kestra, so it loads here too."""
    dashed_inputs = [spec.id for spec in flow.inputs if "-" in spec.id]
    dashed_tasks = [task.id for task in flow.all_tasks() if "-" in task.id]
    if not dashed_inputs and not dashed_tasks:
        return []
    patterns = [
        ("input", key, re.compile(rf"\{{\{{\s*inputs\.{re.escape(key)}\s*\}}\}}"))
        for key in dashed_inputs
    ] + [
        ("output", key, re.compile(rf"\{{\{{\s*outputs\.{re.escape(key)}\.[^}}]+\s*\}}\}}"))
        for key in dashed_tasks
    ]
    problems: list[tuple[Path, str]] = []
    owners: list[tuple[Path, BaseModel]] = [
        (path + (i,), task) for tasks, path in task_lists(flow) for i, task in enumerate(tasks)
    ]
    owners += [(("outputs", i), output) for i, output in enumerate(flow.outputs)]
    for path, owner in owners:
        texts = [text for _, text in _strings(owner, path, nested_tasks=False)]
        for kind, key, pattern in patterns:
            if any(pattern.search(text) for text in texts if "{" in text):
                problems.append(
                    (
                        path,
                        f"Invalid {kind} reference: use {kind}s['{key}'] instead of "
                        f"{kind}s.{key}; keys with dashes require bracket notation",
                    )
                )
    return problems


def recursion_problems(flow: Flow) -> list[tuple[Path, str]]:
    """Kestra's FlowValidator: a flow whose task starts the flow itself ("Recursive call")."""
    problems: list[tuple[Path, str]] = []
    for tasks, path in task_lists(flow):
        for i, task in enumerate(tasks):
            if isinstance(task, StartsFlows) and flow.uid in task.started_flows():
                problems.append(
                    (path + (i,), f"Recursive call to flow [{flow.namespace}.{flow.id}]")
                )
    return problems


def started_flows(flow: Flow) -> set[Uid]:
    """The flows this flow starts (as far as their ids are written literally)."""
    return {
        uid
        for task in flow.all_tasks()
        if isinstance(task, StartsFlows)
        for uid in task.started_flows()
    }


def subflow_cycle(flow: Flow, others: Iterable[Flow]) -> list[Uid] | None:
    """The chain of flows through which `flow` would start itself again, with the flows
    already known, or None."""
    graph: dict[Uid, set[Uid]] = {other.uid: started_flows(other) for other in others}
    graph[flow.uid] = started_flows(flow)
    seen: set[Uid] = set()

    def walk(uid: Uid, chain: list[Uid]) -> list[Uid] | None:
        for nxt in sorted(graph.get(uid, ())):
            if nxt == flow.uid:
                return [*chain, nxt]
            if nxt not in seen:
                seen.add(nxt)
                found = walk(nxt, [*chain, nxt])
                if found is not None:
                    return found
        return None

    return walk(flow.uid, [flow.uid])


# -- walking the flow -----------------------------------------------------------------------


def _templated_strings(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    """Every string of a `Dynamic` property (and of flow outputs), with its path."""
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        for name in value.model_fields_set:
            field = fields.get(name)
            if field is None:
                continue
            key = field.alias or name
            item = getattr(value, name)
            if Dynamic in field.metadata or EXPRESSION in field.metadata:
                yield from _texts(item, path + (key,))
            else:
                yield from _templated_strings(item, path + (key,))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _templated_strings(item, path + (i,))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _templated_strings(item, path + (key,))


def _texts(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, BaseModel):
        yield from _templated_strings(value, path)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _texts(item, path + (i,))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _texts(item, path + (key,))


def _strings(value: Any, path: Path, *, nested_tasks: bool) -> Iterator[tuple[Path, str]]:
    """Every string inside a model, leaving out the tasks nested in it unless asked."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, BaseModel):
        for name in value.model_fields_set:
            item = getattr(value, name, None)
            if not nested_tasks and _holds_tasks(item):
                continue
            yield from _strings(item, path + (name,), nested_tasks=nested_tasks)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _strings(item, path + (i,), nested_tasks=nested_tasks)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, path + (key,), nested_tasks=nested_tasks)


def _holds_tasks(value: Any) -> bool:
    if isinstance(value, Task):
        return True
    if isinstance(value, list | tuple):
        return any(isinstance(item, Task) for item in value)
    if isinstance(value, Mapping):
        return any(_holds_tasks(item) for item in value.values())
    return False


def cycle_problem(flow: Flow, others: Iterable[Flow]) -> Problem | None:
    """The problem of a flow that would start itself again through the flows known: at the
    task of `flow` that starts the first flow of the cycle."""
    cycle = subflow_cycle(flow, (o for o in others if o.uid != flow.uid))
    if cycle is None:
        return None
    chain = " -> ".join(f"{ns}.{fid}" for ns, fid in cycle)
    message = f"Recursive call to flow [{flow.namespace}.{flow.id}] through {chain}"
    place: Path = ()
    for tasks, path in task_lists(flow):
        for i, task in enumerate(tasks):
            if isinstance(task, StartsFlows) and cycle[1] in task.started_flows():
                place = path + (i,)
                break
        if place:
            break
    try:
        _, positions = yamlpos.load(flow.source)
        line, column = positions.of(place)
    except yamlpos.YamlProblem:
        line, column = 1, 1
    return Problem(flow.path or "<flow>", line, column, yamlpos.format_path(place), message)
