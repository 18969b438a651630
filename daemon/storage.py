"""Files that tasks produce, under the data directory, addressed by `kestra://` URIs.

Every method here touches the disk: call them through `asyncio.to_thread` from the loop.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from daemon.errors import NotFound

SCHEME = "kestra://"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _part(text: str) -> str:
    cleaned = _SAFE.sub("_", text)
    if cleaned in ("", ".", ".."):
        raise ValueError(f"{text!r} cannot name a stored file")
    return cleaned


class Storage:
    """Internal storage: `kestra:///ns/flow/executions/EXEC/tasks/TASK/RUN/name` -> a file."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def execution_prefix(self, namespace: str, flow_id: str, execution_id: str) -> str:
        ns = "/".join(_part(p) for p in namespace.split("."))
        return f"/{ns}/{_part(flow_id)}/executions/{_part(execution_id)}"

    def put(self, source: Path | bytes, *, prefix: str, name: str) -> str:
        """Copy (or write) a file under `prefix`, returning its URI."""
        key = f"{prefix}/{_part(name)}"
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        if isinstance(source, bytes):
            tmp.write_bytes(source)
        else:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)
        return SCHEME + key

    def path(self, uri: str) -> Path:
        """The local file behind a URI; NotFound if it is not ours or does not exist."""
        if not uri.startswith(SCHEME):
            raise NotFound(f"{uri!r} is not a storage URI (kestra:///...)")
        target = self._path(uri[len(SCHEME):])
        if not target.is_file():
            raise NotFound(f"no stored file at {uri}")
        return target

    def read_text(self, uri: str) -> str:
        return self.path(uri).read_text(encoding="utf-8")

    def delete_prefix(self, prefix: str) -> int:
        """Remove every file under a prefix (an execution's files); returns how many."""
        target = self._path(prefix)
        if not target.exists():
            return 0
        count = sum(1 for p in target.rglob("*") if p.is_file())
        shutil.rmtree(target)
        return count

    def _path(self, key: str) -> Path:
        root = self.root.resolve()
        target = (root / key.lstrip("/")).resolve()
        if target != root and root not in target.parents:
            raise NotFound(f"{key!r} is outside the storage")
        return target
