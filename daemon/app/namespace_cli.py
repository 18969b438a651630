"""`podium namespace files update NAMESPACE FOLDER [--to PREFIX] [--delete]`: push a local
folder to a running server's namespace files, as `kestra namespace files update` does.

It talks to the API (not the store) so that it works against a daemon on another machine
or a cluster, with the daemon's own checks. Each file is streamed from disk in the
multipart body, never read whole. With `--delete`, namespace files under the prefix that
the folder does not have are deleted afterwards (nothing is deleted when an upload failed).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlencode

from daemon.sdk.errors import PodiumError
from daemon.sdk.nsfiles import CHUNK_SIZE, NamespaceFileError, normalize_path

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT = 60.0  # seconds a request may take (a large file streams within it)


class PushFailed(PodiumError):
    """The server is unreachable, or refused a request: one line says which."""


def add_parsers(commands: Any) -> None:
    namespace = commands.add_parser("namespace", help="work on a running server's namespaces")
    sub = namespace.add_subparsers(dest="area", required=True, metavar="AREA")
    files = sub.add_parser("files", help="namespace files")
    actions = files.add_subparsers(dest="action", required=True, metavar="ACTION")
    update = actions.add_parser(
        "update", help="upload a local folder as namespace files (like kestra's)"
    )
    update.add_argument("namespace", help="the namespace, e.g. company.team")
    update.add_argument("folder", type=Path, help="the local folder to push")
    update.add_argument(
        "--to", default="/", help="the folder in the namespace to put the files in (default /)"
    )
    update.add_argument(
        "--delete",
        action="store_true",
        help="delete namespace files under --to that the local folder does not have",
    )
    update.add_argument("--url", default=None, help=f"the server (default {DEFAULT_URL})")
    update.add_argument(
        "--user", default=None, help="basic-auth user (default: $PODIUM_BASIC_AUTH_USERNAME)"
    )
    update.add_argument(
        "--password",
        default=None,
        help="basic-auth password (default: $PODIUM_BASIC_AUTH_PASSWORD)",
    )


def run(args: argparse.Namespace) -> int:
    env = os.environ
    client = Api(
        args.url or DEFAULT_URL,
        args.namespace,
        args.user or env.get("PODIUM_BASIC_AUTH_USERNAME"),
        args.password or env.get("PODIUM_BASIC_AUTH_PASSWORD"),
    )
    try:
        prefix = normalize_path(args.to)
    except NamespaceFileError as exc:
        raise PushFailed(f"--to: {exc}") from None
    folder: Path = args.folder
    if not folder.is_dir():
        raise PushFailed(f"{folder} is not a folder")
    local = sorted(_files(folder))
    pushed = set()
    for rel in local:
        target = f"{prefix.rstrip('/')}/{rel}"
        client.upload(target, folder / rel)
        pushed.add(target)
        print(f"uploaded {target}")
    deleted = 0
    if args.delete:
        for path in client.files():
            if (path == prefix or path.startswith(prefix.rstrip("/") + "/")) and path not in pushed:
                client.delete(path)
                deleted += 1
                print(f"deleted {path}")
    print(f"{len(pushed)} uploaded, {deleted} deleted in namespace {args.namespace}")
    return 0


def _files(folder: Path) -> Iterator[str]:
    """Regular files below `folder`, as `/`-separated relative paths; links not followed,
    hidden files and folders (.git, .venv) left out."""
    for directory, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            path = Path(directory) / name
            if name.startswith(".") or path.is_symlink() or not path.is_file():
                continue
            yield PurePosixPath(path.relative_to(folder).as_posix()).as_posix()


@dataclass(frozen=True)
class Api:
    url: str
    namespace: str
    username: str | None = None
    password: str | None = None

    def _request(
        self,
        method: str,
        suffix: str,
        query: dict[str, str],
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> bytes:
        quoted = quote(self.namespace, safe="")
        target = f"{self.url.rstrip('/')}/api/v1/namespaces/{quoted}/files{suffix}"
        target += "?" + urlencode(query)
        sent = dict(headers or {})
        if self.username is not None:
            token = f"{self.username}:{self.password or ''}".encode()
            sent["Authorization"] = "Basic " + base64.b64encode(token).decode()
        import urllib.error  # here: urllib.request costs every podium command start-up time
        import urllib.request

        request = urllib.request.Request(target, data=body, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            raise PushFailed(f"{method} {query}: {exc.code} {_message(exc.read())}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PushFailed(f"cannot reach podium at {self.url}: {reason}") from None

    def upload(self, path: str, source: Path) -> None:
        boundary = uuid.uuid4().hex
        name = json.dumps(source.name)
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="fileContent"; '
            f"filename={name}\r\nContent-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = source.stat().st_size

        def body() -> Iterator[bytes]:
            yield head
            with source.open("rb") as handle:
                while chunk := handle.read(CHUNK_SIZE):
                    yield chunk
            yield tail

        headers = {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + size + len(tail)),
        }
        self._request("POST", "", {"path": path}, body(), headers)

    def files(self) -> list[str]:
        found = json.loads(self._request("GET", "/search", {"q": ""}))
        return [str(path) for path in found]

    def delete(self, path: str) -> None:
        self._request("DELETE", "", {"path": path})


def _message(body: bytes) -> str:
    try:
        return str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace")[:200]
