"""Expression functions that need the daemon's services: `read()`, `secret()`, `kv()`,
`errorLogs()` and the file functions `fileSize()`, `fileExists()`, `isFileEmpty()`.

Those that do I/O never run on the event loop: a render started there stops when it reaches
one (`limits.leave_loop`) and runs again in a thread, and `kv`/`errorLogs` (and stored
files) hop back into the loop for the store. Files are
named as Kestra names them: a `kestra:///` URI of internal storage, a `nsfile://` URI or a
plain path of a namespace file.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable, Coroutine, Mapping
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from daemon.engine.secrets import SecretStore
from daemon.sdk.errors import NotFound, PodiumError
from daemon.sdk.nsfiles import NamespaceFileError, normalize_path
from daemon.store.base import Store
from daemon.store.internal_storage import Storage

if TYPE_CHECKING:
    from jinja2.runtime import Context

# Namespaces whose function tables are kept built (a daemon has a few dozen).
TABLES_KEPT = 256
KV_TIMEOUT = 30.0  # seconds a kv() or errorLogs() call waits for the store
FILE_TIMEOUT = 300.0  # seconds a file function waits for the storage (retries included)
_KESTRA = "kestra:///"
_NSFILE = "nsfile://"
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# `kestra:///<ns>/<flow>/executions/<id>/tasks/<task>/<run>/<file>`: a file a task stored.
_EXECUTION_FILE = re.compile(r".*/.*/executions/.*/tasks/.*/.*")
T = TypeVar("T")


class NamespaceFile(NamedTuple):
    """A namespace file a function names: read from the store, not from a local path."""

    namespace: str
    path: str


class FunctionError(PodiumError):
    """A function refusing its arguments, or a file or key it cannot find."""


class ServiceFunctions:
    """Builds the function table a template renders with, for one namespace (or none)."""

    def __init__(
        self,
        storage: Storage,
        secrets: SecretStore,
        store: Store,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self._storage = storage
        self._secrets = secrets
        self._store = store
        self._loop = loop
        # One table per namespace, built once: every templated task asks for one.
        self._tables = functools.lru_cache(maxsize=TABLES_KEPT)(self._build)

    def table(self, namespace: str | None) -> dict[str, Callable[..., Any]]:
        return self._tables(namespace)

    def _wait(self, what: str, job: Coroutine[Any, Any, T], timeout: float = KV_TIMEOUT) -> T:
        """Run a store coroutine on the daemon's loop from the rendering thread."""
        from daemon.expr import limits as expr_limits  # renders only: imported by then

        try:
            expr_limits.leave_loop(what)  # a render on the loop goes to a thread first
        except expr_limits.OffLoop:
            job.close()
            raise
        loop = self._loop
        if loop is None:
            job.close()
            raise FunctionError(f"{what} needs the daemon's event loop")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            job.close()
            raise FunctionError(f"{what} cannot be used here (it would wait for itself)")
        return asyncio.run_coroutine_threadsafe(job, loop).result(timeout=timeout)

    def _build(self, default_namespace: str | None) -> dict[str, Callable[..., Any]]:
        # Here, not at the top: built when something renders, and a flow without
        # expressions (a `podium run` of literal tasks) never imports Jinja.
        from jinja2.utils import pass_context

        store = self._store

        def kv(key: Any = None, namespace: str | None = None, errorOnMissing: bool = True) -> Any:
            """Kestra's `kv(key, namespace, errorOnMissing)`: without a namespace, the flow's
            and then each parent namespace (`a.b.c`, `a.b`, `a`) until the key is found."""
            if key is None:
                raise FunctionError("The 'kv' function expects an argument 'key'.")
            target = namespace or default_namespace
            if target is None:
                raise FunctionError("kv() needs a namespace here")
            candidates = [target] if namespace else _namespace_and_parents(target)
            for candidate in candidates:
                found, value = self._wait("kv()", store.kv.get(candidate, str(key)))
                if found:
                    return value
            if errorOnMissing:
                raise FunctionError(f"The key '{key}' does not exist in the namespace '{target}'.")
            return None

        @pass_context
        def read(context: Context, path: Any = None, namespace: Any = None,
                 revision: Any = None, version: Any = None) -> str:  # fmt: skip
            """Kestra's `read(path, namespace, revision)` (`version` before Kestra 2.0): a
            namespace file or a stored file, as text."""
            if revision is not None or version is not None:
                raise FunctionError("read(): namespace files are not kept by revision here")
            file = self._file(context, "read", path, namespace, default_namespace)
            if isinstance(file, NamespaceFile):
                data = self._wait("read()", _read_namespace_file(store, file), FILE_TIMEOUT)
                if data is None:
                    raise FunctionError(f"read(): no file {path}")
                return data.decode("utf-8", errors="replace")
            try:
                return self._wait("read()", self._storage.read_text(file), FILE_TIMEOUT)
            except NotFound:
                raise FunctionError(f"read(): no file {path}") from None

        @pass_context
        def file_exists(context: Context, path: Any = None, namespace: Any = None) -> bool:
            file = self._file(context, "fileExists", path, namespace, default_namespace)
            if isinstance(file, NamespaceFile):
                return self._namespace_file_size(file) is not None
            return self._wait("fileExists()", self._storage.exists(file), FILE_TIMEOUT)

        @pass_context
        def file_size(context: Context, path: Any = None, namespace: Any = None) -> int:
            return self._size(context, "fileSize", path, namespace, default_namespace)

        @pass_context
        def is_file_empty(context: Context, path: Any = None, namespace: Any = None) -> bool:
            return self._size(context, "isFileEmpty", path, namespace, default_namespace) == 0

        @pass_context
        def error_logs(context: Context) -> list[dict[str, Any]]:
            """Kestra's `errorLogs()`: the ERROR lines of this execution so far."""
            execution = context.get("execution")
            if not isinstance(execution, Mapping) or "id" not in execution:
                raise FunctionError("errorLogs() can only be used inside an execution")
            return self._wait("errorLogs()", _error_logs(store, str(execution["id"])))

        return {
            "read": read,
            "secret": self._secrets.secret,
            "kv": kv,
            "errorLogs": error_logs,
            "fileExists": file_exists,
            "fileSize": file_size,
            "isFileEmpty": is_file_empty,
        }

    # -- files --------------------------------------------------------------------------

    def _size(
        self, context: Context, name: str, path: Any, namespace: Any, default: str | None
    ) -> int:
        file = self._file(context, name, path, namespace, default)
        if isinstance(file, NamespaceFile):
            size = self._namespace_file_size(file)
            if size is None:
                raise FunctionError(f"{name}(): no file {path}")
            return size
        try:
            return self._wait(f"{name}()", self._storage.size(file), FILE_TIMEOUT)
        except NotFound:
            raise FunctionError(f"{name}(): no file {path}") from None

    def _namespace_file_size(self, file: NamespaceFile) -> int | None:
        """The size of a namespace file; None when there is no file (or a directory)."""
        info = self._wait("namespace files", self._store.namespace_files.stat(*file))
        return None if info is None or info.is_directory else info.size

    def _file(
        self, context: Context, name: str, path: Any, namespace: Any, default: str | None
    ) -> str | NamespaceFile:
        """The file a function names, after Kestra's checks of what it may read: a
        namespace file (kept in the store), or the `kestra:///` URI of a stored file."""
        from daemon.expr import limits as expr_limits  # renders only: imported by then

        expr_limits.leave_loop(f"{name}()")  # file I/O: a render on the loop goes to a thread
        if path is None:
            raise FunctionError(
                f"The '{name}' function expects an argument 'path' that is a path to a "
                "namespace file or an internal storage URI."
            )
        text = str(path)
        if text.startswith(_KESTRA):
            return self._stored(context, text)
        if text.startswith(_NSFILE):
            authority, _, rest = text[len(_NSFILE) :].partition("/")
            if authority and namespace:
                raise FunctionError(
                    "You cannot set a namespace both as the function argument and inside the URI"
                )
            return self._namespace_file(str(authority or namespace or default or ""), rest)
        if _SCHEME.match(text):
            raise FunctionError(f"Cannot process the URI {text}: scheme not supported.")
        return self._namespace_file(str(namespace or default or ""), text)

    def _namespace_file(self, namespace: str, path: str) -> NamespaceFile:
        if not namespace:
            raise FunctionError("a namespace file needs a namespace here")
        try:
            normalized = normalize_path(path)
        except NamespaceFileError:
            normalized = "/"
        if normalized == "/" or not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", namespace):
            raise FunctionError(f"{path!r} is not a file of namespace {namespace}")
        return NamespaceFile(namespace, normalized)

    def _stored(self, context: Context, uri: str) -> str | NamespaceFile:
        """A `kestra:///` file: namespace files and execution files (this execution's, the
        parent's or upstream's named by `trigger`, or any file a task stored)."""
        key = uri[len(_KESTRA) :]
        head, marker, rest = key.partition("/_files/")
        if marker and "/executions/" not in head:
            return self._namespace_file(head.replace("/", "."), rest)
        flow, execution, trigger = (context.get(k) or {} for k in ("flow", "execution", "trigger"))
        allowed = [
            self._storage.execution_prefix(ns, flow_id, ex_id)
            for ns, flow_id, ex_id in (
                (flow.get("namespace"), flow.get("id"), execution.get("id")),
                (trigger.get("namespace"), trigger.get("flowId"), trigger.get("executionId")),
            )
            if ns and flow_id and ex_id
        ]
        # The flow's own files (its executions', its triggers' copies) are its to read.
        own_flow = self._storage.execution_prefix(
            flow.get("namespace", "_"), flow.get("id", "_"), "_"
        )
        allowed.append(own_flow.rsplit("/executions/", 1)[0])
        own = any(("/" + key).startswith(prefix + "/") for prefix in allowed)
        if not own:
            _refuse_foreign(uri, key, flow, trigger)
        if ".." in PurePosixPath(key).parts:
            raise FunctionError(f"Unable to read the file '{uri}': '..' is not allowed")
        return uri


def _refuse_foreign(uri: str, key: str, flow: dict[str, Any], trigger: dict[str, Any]) -> None:
    """Another execution's file, as Kestra's AbstractFileFunction judges it: a task's
    file, and, in an execution another started (a subflow), only that parent's. Its
    namespace must be the flow's own: Kestra restricts namespaces only in its
    Enterprise edition, where nothing lets one namespace's flows read another's files
    here (podium has no `allowedNamespaces`)."""
    if not _EXECUTION_FILE.fullmatch(key):
        raise FunctionError(f"Unable to read the file '{uri}' as it is not an execution file")
    if trigger.get("executionId"):
        raise FunctionError(
            f"Unable to read the file '{uri}' as it didn't belong to the parent execution"
        )
    owner = key.rsplit("/executions/", 1)[0].rpartition("/")[0].replace("/", ".")
    namespace = str(flow.get("namespace") or "")
    if owner != namespace:
        raise FunctionError(
            f"Unable to read the file '{uri}': namespace {owner} is not allowed "
            f"from namespace {namespace}"
        )


def _namespace_and_parents(namespace: str) -> list[str]:
    parts = namespace.split(".")
    return [".".join(parts[:n]) for n in range(len(parts), 0, -1)]


async def _read_namespace_file(store: Store, file: NamespaceFile) -> bytes | None:
    """The whole content (read() returns text, as Kestra's does); None when missing."""
    info = await store.namespace_files.stat(*file)
    if info is None or info.is_directory:
        return None
    return b"".join([chunk async for chunk in store.namespace_files.read(*file)])


async def _error_logs(store: Store, execution_id: str) -> list[dict[str, Any]]:
    await store.flush()
    return list(await store.logs(execution_id, min_level="ERROR"))
