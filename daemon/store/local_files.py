"""Files that tasks produce, under the data directory, addressed by `kestra://` URIs.

Every method here touches the disk: call them through `asyncio.to_thread` from the loop.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

from daemon.sdk.errors import NotFound
from daemon.sdk.files import SCHEME, StorageError

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _part(text: str) -> str:
    cleaned = _SAFE.sub("_", text)
    if cleaned in ("", ".", ".."):
        raise ValueError(f"{text!r} cannot name a stored file")
    return cleaned


def _refused(action: str, path: Path, exc: OSError) -> StorageError:
    """'cannot write /data/storage/…/out.csv: No space left on device'. The directory the
    system names is kept when it is not the file's own (which one is not a directory);
    other names it gives are not the storage's (sendfile names the source)."""
    reason = exc.strerror or str(exc)
    culprit = Path(os.fsdecode(exc.filename)) if exc.filename is not None else None
    if culprit is not None and culprit in path.parents and culprit != path.parent:
        reason = f"{reason} ({culprit})"
    return StorageError(f"cannot {action} {path}: {reason}", exc.errno)


class Storage:
    """Internal storage: `kestra:///ns/flow/executions/EXEC/tasks/TASK/RUN/name` -> a file."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def execution_prefix(self, namespace: str, flow_id: str, execution_id: str) -> str:
        ns = "/".join(_part(p) for p in namespace.split("."))
        return f"/{ns}/{_part(flow_id)}/executions/{_part(execution_id)}"

    def put(self, source: Path | bytes, *, prefix: str, name: str) -> str:
        """Copy (or write) a file under `prefix`, returning its URI.

        A source that cannot be read raises its own OSError; a storage that cannot take the
        file raises StorageError, leaving no partial file behind.
        """
        key = f"{prefix}/{_part(name)}"
        target = self._path(key)
        if not isinstance(source, bytes):
            os.stat(source)  # a missing source is the caller's problem, not the storage's
        tmp = target.with_name(f".{target.name}.part")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(source, bytes):
                tmp.write_bytes(source)
            else:
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)  # a full disk gets its space back
            raise _refused("write", target, exc) from exc
        return SCHEME + key

    def path(self, uri: str) -> Path:
        """The local file behind a URI; NotFound if it is not ours or does not exist."""
        if not uri.startswith(SCHEME):
            raise NotFound(f"{uri!r} is not a storage URI (kestra:///...)")
        target = self._path(uri[len(SCHEME) :])
        if not target.is_file():
            raise NotFound(f"no stored file at {uri}")
        return target

    def read_text(self, uri: str) -> str:
        return self.path(uri).read_text(encoding="utf-8")

    def delete(self, uri: str) -> bool:
        """Remove one stored file; False when there is none."""
        try:
            target = self.path(uri)
        except NotFound:
            return False
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise _refused("delete", target, exc) from exc
        return True

    def delete_prefix(self, prefix: str) -> list[str]:
        """Remove every file under a prefix (an execution's files); returns their URIs."""
        target = self._path(prefix)
        if not target.exists():
            return []
        root = self.root.resolve()
        uris = sorted(
            f"{SCHEME}/{p.relative_to(root).as_posix()}" for p in target.rglob("*") if p.is_file()
        )
        try:
            shutil.rmtree(target)
        except OSError as exc:
            raise _refused("delete", target, exc) from exc
        return uris

    def _path(self, key: str) -> Path:
        root = self.root.resolve()
        target = (root / key.lstrip("/")).resolve()
        if target != root and root not in target.parents:
            raise NotFound(f"{key!r} is outside the storage")
        return target
