"""Files plug-ins hand to the daemon's storage: their `kestra://` URIs, and the error a
storage that refuses a file raises."""

from __future__ import annotations

from daemon.sdk.errors import PodiumError

SCHEME = "kestra://"


class StorageError(PodiumError):
    """The storage directory refused a file: full, read-only, not ours to write...

    A known condition of the machine, not a bug: the task (or trigger) that wanted the file
    fails with one line naming the file and the system's reason, and the daemon goes on.
    `errno` is the system's error number (e.g. `errno.ENOSPC`).
    """

    def __init__(self, message: str, errno: int | None) -> None:
        super().__init__(message)
        self.errno = errno
