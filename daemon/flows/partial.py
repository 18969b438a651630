"""What can still be checked of a flow that does not load, part by part.

A flow with one bad property is refused whole, but its other tasks, inputs and outputs
did parse: their expressions and deprecated forms are checked all the same, so a person
fixing the file sees every problem in one pass (Kestra's flow validation answers its
warnings beside the constraint violations). Also the walk of the YAML as written that
names every plug-in type written by an older name (Kestra's "relocations").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from daemon.flows.checks import advice_in, raw_template_problems, template_problems_in
from daemon.flows.definition import Flow, FlowOutput, Path
from daemon.flows.deprecations import deprecations_in, raw_deprecations
from daemon.sdk.inputs import InputSpec, validate_input_specs

# Plug-ins the loader built from a mapping of the YAML (by the mapping's id), and the class
# of those that did not build (by the same key), with the mapping itself kept alive.
Built = dict[int, tuple[Mapping[str, Any], BaseModel]]
Failed = dict[int, tuple[Mapping[str, Any], type[BaseModel]]]


@dataclass
class Salvaged:
    problems: list[tuple[Path, str]] = field(default_factory=list)
    inner_problems: list[tuple[Path, str, int]] = field(default_factory=list)
    warnings: list[tuple[Path, str]] = field(default_factory=list)  # deprecated forms
    advice: list[tuple[Path, str]] = field(default_factory=list)  # the other warnings


def salvage(raw: Mapping[str, Any], built: Built, failed: Failed) -> Salvaged:
    """Template problems, input declaration problems and deprecations of the parts of a
    flow that parsed, when the flow as a whole did not."""
    found = Salvaged(warnings=raw_deprecations(Flow, raw, ()))
    _inputs(raw.get("inputs"), found)
    outputs = raw.get("outputs")
    for i, item in enumerate(outputs if isinstance(outputs, list) else []):
        try:
            output = FlowOutput.model_validate(item)
        except ValidationError:
            continue  # reported by the flow's validation
        found.inner_problems += template_problems_in(output, ("outputs", i))
    for key, value in raw.items():
        if key not in ("inputs", "outputs"):
            _walk(value, (key,), built, failed, found)
    return found


def _inputs(raw: Any, found: Salvaged) -> None:
    specs: dict[int, InputSpec] = {}
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        try:
            specs[i] = InputSpec.model_validate(item)
        except ValidationError:
            continue
        found.warnings += deprecations_in(specs[i], ("inputs", i))
    if isinstance(raw, list) and len(specs) == len(raw):
        problems = validate_input_specs(list(specs.values()))
        found.problems += [(("inputs", *sub), m) for sub, m in problems]
        return
    # Some did not parse: what concerns one input alone (its defaults, its fields); checks
    # across the list (duplicate ids, dependsOn) would be about a list that is not there.
    for i, spec in specs.items():
        for sub, message in validate_input_specs([spec]):
            if sub[1:2] != ("dependsOn",):
                found.problems.append((("inputs", i, *sub[1:]), message))


def _walk(node: Any, path: Path, built: Built, failed: Failed, found: Salvaged) -> None:
    if isinstance(node, Mapping):
        if id(node) in built:  # a whole plug-in, its nested ones included
            model = built[id(node)][1]
            found.inner_problems += template_problems_in(model, path)
            found.warnings += deprecations_in(model, path)
            found.advice += advice_in(model, path)
            return
        if id(node) in failed:  # its own properties as written; its children may have built
            cls = failed[id(node)][1]
            found.inner_problems += raw_template_problems(cls, node, path)
            found.warnings += raw_deprecations(cls, node, path)
        for key, value in node.items():
            _walk(value, path + (key,), built, failed, found)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, path + (i,), built, failed, found)


def relocations(raw: Any, written: Mapping[int, tuple[str, str]]) -> list[str]:
    """Kestra's FlowValidationService.relocations: "X is replaced by Y" for every plug-in
    whose `type:` is an older name of its class (`written`: mapping id -> (as written,
    current name)), in file order."""
    out: list[str] = []
    if isinstance(raw, Mapping):
        names = written.get(id(raw))
        if names is not None and names[0] != names[1]:
            out.append(f"{names[0]} is replaced by {names[1]}")
        for value in raw.values():
            out += relocations(value, written)
    elif isinstance(raw, list):
        for item in raw:
            out += relocations(item, written)
    return out
