"""`podium validate`, and where the one-shot commands find the settings flows depend on
(the plugin-defaults a flow's `pluginDefaultsRef` may name)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.sdk.errors import FlowError, Problem

if TYPE_CHECKING:
    from daemon.config.settings import Settings
    from daemon.flows.definition import PluginDefault

EXIT_OK, EXIT_INVALID = 0, 2


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    validate = commands.add_parser(
        "validate", parents=[common], help="check flow files; every error as file:line:col"
    )
    validate.add_argument("paths", nargs="+", type=Path, help="flow files or directories")
    validate.add_argument(
        "--config",
        type=Path,
        default=None,
        help="settings file whose plugin-defaults flows may use (default: podium.yaml if "
        "present, or $PODIUM_CONFIG)",
    )


def config_file(given: Path | None) -> Path | None:
    """--config, else $PODIUM_CONFIG, else ./podium.yaml when there is one."""
    config = given or (
        Path(os.environ["PODIUM_CONFIG"]) if os.environ.get("PODIUM_CONFIG") else None
    )
    if config is None and Path("podium.yaml").is_file():
        config = Path("podium.yaml")
    return config


def settings_of(config_file: Path | None) -> Settings:
    from daemon.config.settings import load_settings

    return load_settings(config_file, {})


def plugin_defaults(settings: Settings) -> list[PluginDefault]:
    from daemon.config.settings import ConfigError
    from daemon.flows.defaults import global_defaults

    try:
        return global_defaults(settings.plugin_defaults)
    except ValueError as exc:
        raise ConfigError(f"invalid settings: {exc}") from None


RUN_SETTINGS = ("PODIUM_GLOBALS", "PODIUM_PLUGIN_DEFAULTS")


def flow_files(paths: Sequence[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        else:
            out.append(path)
    return out


def run(args: argparse.Namespace) -> int:
    from daemon.flows.loader import load_flow_file

    # Named plugin-defaults may be the daemon's: read them where `podium serve` would.
    defaults = plugin_defaults(settings_of(config_file(args.config)))
    bad = 0
    files = flow_files(args.paths)
    for file in files:
        try:
            flow = load_flow_file(file, None, None, defaults)
        except FlowError as exc:
            bad += 1
            # Errors and warnings (of the parts that did parse) in file order: one pass
            # through the file fixes everything.
            _print_problems(exc.problems, exc.warnings)
        else:
            print(
                f"{file}: ok ({flow.namespace}.{flow.id}, {sum(1 for _ in flow.all_tasks())} tasks)"
            )
            _print_problems([], flow.warnings)  # deprecated forms: it loads, says what to use
    if not files:
        print("podium: no flow files found", file=sys.stderr)
        return EXIT_INVALID
    return EXIT_INVALID if bad else EXIT_OK


def _print_problems(errors: Sequence[Problem], warnings: Sequence[Problem]) -> None:
    lines = [(p.line, p.column, 0, str(p)) for p in errors]
    for w in warnings:
        where = f"{w.file}:{w.line}:{w.column}"
        text = (
            f"{where}: {w.path}: warning: {w.message}"
            if w.path
            else f"{where}: warning: {w.message}"
        )
        lines.append((w.line, w.column, 1, text))
    for *_, text in sorted(lines):
        print(text, file=sys.stderr)
