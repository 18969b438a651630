"""Kestra's io.kestra.plugin.fs.sftp tasks: SFTP on asyncssh (see daemon/sdk/sftpfs.py), the
work itself in fs_remote."""

from __future__ import annotations

from daemon.sdk.remotefs import SftpConnection
from tasks.fs_remote import (
    RemoteDelete,
    RemoteDownload,
    RemoteDownloads,
    RemoteList,
    RemoteMove,
    RemoteUpload,
    RemoteUploads,
)


class SftpList(RemoteList, SftpConnection):
    """List the files of a directory on an SFTP server."""

    types = ("io.kestra.plugin.fs.sftp.List",)


class SftpDownload(RemoteDownload, SftpConnection):
    """Download one file from an SFTP server into storage."""

    types = ("io.kestra.plugin.fs.sftp.Download",)


class SftpDownloads(RemoteDownloads, SftpConnection):
    """Download the files of a directory on an SFTP server, then MOVE or DELETE them."""

    types = ("io.kestra.plugin.fs.sftp.Downloads",)


class SftpUpload(RemoteUpload, SftpConnection):
    """Upload one stored file to an SFTP server."""

    types = ("io.kestra.plugin.fs.sftp.Upload",)


class SftpUploads(RemoteUploads, SftpConnection):
    """Upload stored files into a directory on an SFTP server."""

    types = ("io.kestra.plugin.fs.sftp.Uploads",)


class SftpDelete(RemoteDelete, SftpConnection):
    """Delete a file or directory on an SFTP server."""

    types = ("io.kestra.plugin.fs.sftp.Delete",)


class SftpMove(RemoteMove, SftpConnection):
    """Move or rename a file on an SFTP server."""

    types = ("io.kestra.plugin.fs.sftp.Move",)
