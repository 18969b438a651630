"""Kestra's io.kestra.plugin.fs.ftps tasks: FTP over TLS, implicit or explicit (AUTH TLS),
on aioftp (see daemon/sdk/ftpfs.py), the work itself in fs_remote."""

from __future__ import annotations

from daemon.sdk.remotefs import FtpsConnection
from tasks.fs_remote import (
    RemoteDelete,
    RemoteDownload,
    RemoteDownloads,
    RemoteList,
    RemoteMove,
    RemoteUpload,
    RemoteUploads,
)


class FtpsList(RemoteList, FtpsConnection):
    """List the files of a directory on an FTPS server."""

    types = ("io.kestra.plugin.fs.ftps.List",)


class FtpsDownload(RemoteDownload, FtpsConnection):
    """Download one file from an FTPS server into storage."""

    types = ("io.kestra.plugin.fs.ftps.Download",)


class FtpsDownloads(RemoteDownloads, FtpsConnection):
    """Download the files of a directory on an FTPS server, then MOVE or DELETE them."""

    types = ("io.kestra.plugin.fs.ftps.Downloads",)


class FtpsUpload(RemoteUpload, FtpsConnection):
    """Upload one stored file to an FTPS server."""

    types = ("io.kestra.plugin.fs.ftps.Upload",)


class FtpsUploads(RemoteUploads, FtpsConnection):
    """Upload stored files into a directory on an FTPS server."""

    types = ("io.kestra.plugin.fs.ftps.Uploads",)


class FtpsDelete(RemoteDelete, FtpsConnection):
    """Delete a file or directory on an FTPS server."""

    types = ("io.kestra.plugin.fs.ftps.Delete",)


class FtpsMove(RemoteMove, FtpsConnection):
    """Move or rename a file on an FTPS server."""

    types = ("io.kestra.plugin.fs.ftps.Move",)
