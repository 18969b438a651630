"""Kestra's io.kestra.plugin.fs.ftp tasks: FTP on aioftp (see daemon/sdk/ftpfs.py), the
work itself in fs_remote."""

from __future__ import annotations

from daemon.sdk.remotefs import FtpConnection
from tasks.fs_remote import (
    RemoteDelete,
    RemoteDownload,
    RemoteDownloads,
    RemoteList,
    RemoteMove,
    RemoteUpload,
    RemoteUploads,
)


class FtpList(RemoteList, FtpConnection):
    """List the files of a directory on an FTP server."""

    types = ("io.kestra.plugin.fs.ftp.List",)


class FtpDownload(RemoteDownload, FtpConnection):
    """Download one file from an FTP server into storage."""

    types = ("io.kestra.plugin.fs.ftp.Download",)


class FtpDownloads(RemoteDownloads, FtpConnection):
    """Download the files of a directory on an FTP server, then MOVE or DELETE them."""

    types = ("io.kestra.plugin.fs.ftp.Downloads",)


class FtpUpload(RemoteUpload, FtpConnection):
    """Upload one stored file to an FTP server."""

    types = ("io.kestra.plugin.fs.ftp.Upload",)


class FtpUploads(RemoteUploads, FtpConnection):
    """Upload stored files into a directory on an FTP server."""

    types = ("io.kestra.plugin.fs.ftp.Uploads",)


class FtpDelete(RemoteDelete, FtpConnection):
    """Delete a file or directory on an FTP server."""

    types = ("io.kestra.plugin.fs.ftp.Delete",)


class FtpMove(RemoteMove, FtpConnection):
    """Move or rename a file on an FTP server."""

    types = ("io.kestra.plugin.fs.ftp.Move",)
