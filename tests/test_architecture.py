"""The shape of the house (shared/CONVENTIONS.md, issue #12), checked on the source tree.

Import boundaries are import-linter's job (the contracts in pyproject.toml, run by
`make test`); this checks what it cannot: sizes, names, docstrings, and that every
plug-in module is registered through the entry points.
"""

from __future__ import annotations

import ast
import tomllib
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "daemon"
MAX_MODULE_LINES = 450
MAX_PUBLIC_METHODS = 20


def core_modules() -> list[Path]:
    skipped = {"__pycache__", "node_modules"}  # the UI's front end installs its npm packages
    return sorted(p for p in CORE.rglob("*.py") if not skipped & set(p.parts))


def plugin_modules() -> list[Path]:
    return sorted(
        p
        for package in ("tasks", "triggers")
        for p in (ROOT / package).rglob("*.py")
        if "__pycache__" not in p.parts and p.name != "__init__.py"
    )


def dotted(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def test_no_core_module_is_longer_than_a_sitting() -> None:
    long = {
        dotted(p): n
        for p in core_modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"split these along a seam (at most {MAX_MODULE_LINES} lines)"


def test_no_class_of_the_core_has_more_than_twenty_public_methods() -> None:
    crowded: dict[str, int] = {}
    for path in core_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef):
                continue
            public = [
                item.name
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                and not item.name.startswith("_")
                and not any(
                    isinstance(d, ast.Name) and d.id in ("property", "staticmethod")
                    for d in item.decorator_list
                )
            ]
            if len(public) > MAX_PUBLIC_METHODS:
                crowded[f"{dotted(path)}.{node.name}"] = len(public)
    assert crowded == {}, "a class that does this much is several classes"


def test_the_core_top_level_holds_only_sub_packages() -> None:
    loose = sorted(p.name for p in CORE.iterdir() if p.is_file() and p.suffix == ".py")
    assert loose == ["__init__.py", "__main__.py"]
    packages = sorted(p.name for p in CORE.iterdir() if (p / "__init__.py").is_file())
    assert packages == [
        "api",
        "app",
        "cluster",
        "config",
        "engine",
        "expr",
        "flows",
        "sdk",
        "store",
    ]


def test_no_two_core_modules_share_a_name() -> None:
    names = Counter(
        p.stem if p.name != "__init__.py" else p.parent.name
        for p in core_modules()
        if p.name != "__main__.py"
    )
    assert [name for name, count in names.items() if count > 1] == []


@pytest.mark.parametrize("path", core_modules(), ids=dotted)
def test_every_core_module_says_what_it_is_for(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert doc, f"{dotted(path)} has no module docstring"


def test_every_plugin_module_is_registered_through_the_entry_points() -> None:
    """A module defining plug-in classes (or a start-up hook) that pyproject.toml does not
    list would silently not exist for the daemon."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(project["project"]["entry-points"]["podium.plugins"].values())
    defining = set()
    for path in plugin_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            declares_types = isinstance(node, ast.ClassDef) and any(
                isinstance(item, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "types" for t in item.targets)
                for item in node.body
            )
            hook = isinstance(node, ast.AsyncFunctionDef) and node.name == "on_daemon_start"
            if declares_types or hook:
                defining.add(dotted(path))
    assert defining - listed == set(), 'add these to [project.entry-points."podium.plugins"]'
    assert listed - defining == set(), "these entry points register nothing"
