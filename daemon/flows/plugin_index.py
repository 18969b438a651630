"""Which module defines which `type:`, remembered between processes.

A one-shot `podium run` needs the few plug-in modules its flow names, not the hundred-odd
classes every installed plug-in defines: importing them all costs more start-up time and
memory than running a small flow. The index records, per entry-point module, the type
names it registered the last time every plug-in was loaded (and which modules have an
`on_daemon_start` hook, imported at every `podium serve` start), under a fingerprint of the
installed entry points and of each module file's size and modification time. A
different fingerprint (a plug-in installed, upgraded or edited) means a full load, which
writes the index anew. A module that failed to load is never indexed, so that installing
its missing dependency is seen at the next start.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)

VERSION = 2
KINDS = ("task", "trigger", "condition")
# kind -> type name -> module name (all names, or the first name of each class)
Index = dict[str, dict[str, str]]


def index_file() -> Path:
    """$PODIUM_CACHE_DIR, else $XDG_CACHE_HOME/podium, else ~/.cache/podium."""
    if os.environ.get("PODIUM_CACHE_DIR"):
        return Path(os.environ["PODIUM_CACHE_DIR"]) / "plugins.json"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "podium" / "plugins.json"


def fingerprint(entries: Iterable[metadata.EntryPoint]) -> str | None:
    """Entry points, their distributions' versions and module files; None if a module
    cannot be found without importing it (then nothing is cached)."""
    digest = hashlib.sha256()
    # The distribution's METADATA text stands for its name and version: `dist.version`
    # parses the whole file with the e-mail parser, once per entry point (55 of podium's
    # own: ~45 ms of every `podium run`); read as text and hashed once per distribution
    # (the entry points of one distribution share its object).
    # Keyed by the object itself, which the dict keeps alive: an id() could be reused.
    versions: dict[metadata.Distribution, str] = {}
    for entry in entries:
        dist = entry.dist
        version = "?"
        if dist is not None:
            if dist not in versions:
                text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
                versions[dist] = hashlib.sha256(text.encode()).hexdigest()
            version = versions[dist]
        try:
            spec = importlib.util.find_spec(entry.value)
        except (ImportError, ValueError):
            return None
        if spec is None or spec.origin is None:
            return None
        try:
            stat = os.stat(spec.origin)
        except OSError:
            return None
        digest.update(
            f"{entry.name}={entry.value}|{version}|{spec.origin}|{stat.st_size}|"
            f"{stat.st_mtime_ns}\n".encode()
        )
    return digest.hexdigest()


def read(path: Path, expected: str) -> tuple[Index, Index, list[str]] | None:
    """(types, canonical types, modules with start-up hooks) if the index is there and
    matches `expected`; None otherwise (never an error)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        return None
    if doc.get("fingerprint") != expected:
        return None
    types, canonical = _as_index(doc.get("types")), _as_index(doc.get("canonical"))
    hooks = doc.get("hooks")
    if types is None or canonical is None or not isinstance(hooks, list):
        return None
    if not all(isinstance(module, str) for module in hooks):
        return None
    return types, canonical, hooks


def _as_index(value: object) -> Index | None:
    if not isinstance(value, dict) or set(value) != set(KINDS):
        return None
    out: Index = {}
    for kind, names in value.items():
        if not isinstance(names, dict):
            return None
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in names.items()):
            return None
        out[kind] = names
    return out


def write(path: Path, stamp: str, types: Index, canonical: Index, hooks: list[str]) -> None:
    """Atomically, and quietly: a cache that cannot be written only costs speed."""
    doc = {
        "version": VERSION,
        "fingerprint": stamp,
        "types": types,
        "canonical": canonical,
        "hooks": hooks,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=path.parent, prefix=".plugins-", suffix=".tmp", delete=False
        ) as tmp:
            json.dump(doc, tmp, sort_keys=True)
        os.replace(tmp.name, path)
    except OSError as exc:
        log.debug("plug-in index not written to %s: %s", path, exc)
