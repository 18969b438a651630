"""Files in S3-compatible object storage (AWS S3, MinIO, Cloudflare R2, GCS's S3 API).

aiobotocore does the protocol (SigV4, the credential chain of the AWS environment,
endpoints, path-style addressing): its client is the one AWS maintains, run on aiohttp,
which the daemon already uses. What this module adds is what a pipeline daemon needs of
it: large files go up as multipart uploads a part at a time (aborted on failure, so no
half-file appears and no parts are left billed), files come down as a stream that resumes
at its offset (pinned to the object's ETag) when a connection drops, and every request is
tried again with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import botocore.exceptions  # type: ignore[import-untyped]
from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from aiobotocore.session import get_session  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError

from daemon.config.storage import StorageSettings
from daemon.sdk.errors import NotFound
from daemon.sdk.files import StorageError
from daemon.store.blobs import (
    READ_CHUNK,
    BlobInfo,
    Blobs,
    Transient,
    check_key,
    check_prefix,
    with_retries,
)

MAX_PARTS = 10_000  # S3's limit: a bigger file gets bigger parts
# No reply, or half of one: refused, timed out, dropped mid-reply. Other BotoCoreErrors
# (no credentials, a bad parameter) would fail the same way again.
_NO_REPLY = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    OSError,
    TimeoutError,
    aiohttp.ClientError,
)
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_PRECONDITION = frozenset({"412", "PreconditionFailed"})


def _transient(exc: BaseException) -> bool:
    """Worth another try: a 5xx or throttling reply, or no reply at all (refused, timed out,
    or a connection dropped mid-reply: aiohttp's ClientPayloadError...)."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = exc.response.get("Error", {}).get("Code", "")
        return bool(status >= 500 or status == 429 or code in ("SlowDown", "RequestTimeout"))
    return isinstance(exc, _NO_REPLY)


def _warm(session: Any) -> None:
    """Load what botocore reads from disk while it builds an S3 client (config files,
    service and endpoint models) into the session's caches, without an event loop."""
    session.get_scoped_config()
    loader = session.get_component("data_loader")
    for name in ("endpoints", "partitions", "sdk-default-configuration", "_retry"):
        loader.load_data(name)
    for kind in ("service-2", "endpoint-rule-set-1", "paginators-1", "waiters-2"):
        with contextlib.suppress(Exception):
            loader.load_service_model("s3", kind, api_version=None)


class S3Blobs(Blobs):
    def __init__(self, settings: StorageSettings) -> None:
        assert settings.bucket is not None  # StorageSettings checks it
        self._settings = settings
        self._bucket = settings.bucket
        self._prefix = settings.prefix.strip("/")
        self._retries = settings.retries
        self._part = settings.part_size
        self._client: Any = None
        self._stack = contextlib.AsyncExitStack()
        self._opening = asyncio.Lock()
        prefix = f"/{self._prefix}" if self._prefix else ""
        self.where = f"s3://{self._bucket}{prefix}"

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self._prefix}/{key}" if self._prefix else key

    async def _open(self) -> Any:
        async with self._opening:
            if self._client is None:
                session = get_session()
                # botocore reads its config files and service models from disk while it
                # builds a client, and caches them in the session: they are loaded in a
                # thread first, so that building the client reads no file on the loop.
                await asyncio.to_thread(_warm, session)
                self._client = await self._stack.enter_async_context(self._create_client(session))
            return self._client

    def _create_client(self, session: Any) -> Any:
        settings = self._settings
        config = AioConfig(
            s3={"addressing_style": "path" if settings.path_style else "auto"},
            # Our own retries (with_retries) wrap each call; botocore's would multiply them.
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            # Checksums only where S3 requires them: R2, GCS and older MinIO refuse the
            # newer default trailers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return session.create_client(
            "s3",
            endpoint_url=settings.endpoint,
            region_name=settings.region,
            aws_access_key_id=settings.access_key,
            aws_secret_access_key=settings.secret_key,
            aws_session_token=settings.session_token,
            config=config,
        )

    async def _call(self, what: str, operation: str, **params: Any) -> Any:
        """One S3 request (`operation` of the client, e.g. "get_object"), tried again on a
        transient failure; a missing key or a failed precondition is the ClientError."""

        async def attempt() -> Any:
            client = await self._open()
            try:
                return await getattr(client, operation)(Bucket=self._bucket, **params)
            except (TimeoutError, ClientError, BotoCoreError, OSError, aiohttp.ClientError) as exc:
                if _transient(exc):
                    raise Transient(f"{type(exc).__name__}: {exc}") from exc
                if isinstance(exc, ClientError):
                    code = exc.response.get("Error", {}).get("Code", "")
                    if code in _MISSING or code in _PRECONDITION or code == "InvalidRange":
                        raise
                raise StorageError(f"cannot {what} ({self.where}): {exc}", None) from exc

        return await with_retries(what, self._retries, attempt, where=self.where)

    # -- writing ------------------------------------------------------------------------

    async def put_bytes(self, key: str, data: bytes) -> None:
        name = self._key(key)
        await self._call(
            f"write {key}",
            "put_object",
            Key=name,
            Body=data,
        )

    async def put_file(self, key: str, source: Path, size: int) -> None:
        name = self._key(key)
        part = max(self._part, -(-size // MAX_PARTS))
        if size <= part:
            data = await asyncio.to_thread(source.read_bytes)
            await self.put_bytes(key, data)
            return
        created = await self._call(
            f"write {key}",
            "create_multipart_upload",
            Key=name,
        )
        upload = created["UploadId"]
        try:
            parts = await self._upload_parts(key, name, upload, source, part)
            await self._call(
                f"write {key}",
                "complete_multipart_upload",
                Key=name,
                UploadId=upload,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self._call(
                        f"abort the upload of {key}",
                        "abort_multipart_upload",
                        Key=name,
                        UploadId=upload,
                    )
                )
            raise

    async def _upload_parts(
        self, key: str, name: str, upload: str, source: Path, part: int
    ) -> list[dict[str, Any]]:
        """Parts go up one after another while the next is read from disk: two parts in
        memory at most."""
        handle = await asyncio.to_thread(source.open, "rb")
        parts: list[dict[str, Any]] = []
        try:
            number = 1
            data = await asyncio.to_thread(handle.read, part)
            while data:
                body, number_now = data, number
                sent = asyncio.ensure_future(
                    self._call(
                        f"write part {number_now} of {key}",
                        "upload_part",
                        Key=name,
                        UploadId=upload,
                        PartNumber=number_now,
                        Body=body,
                    )
                )
                try:
                    data = await asyncio.to_thread(handle.read, part)
                finally:
                    reply = await sent
                parts.append({"PartNumber": number_now, "ETag": reply["ETag"]})
                number += 1
        finally:
            handle.close()
        return parts

    # -- reading ------------------------------------------------------------------------

    async def info(self, key: str) -> BlobInfo | None:
        name = self._key(key)
        try:
            head = await self._call(f"look up {key}", "head_object", Key=name)
        except ClientError:
            return None
        return BlobInfo(int(head["ContentLength"]), str(head["ETag"]))

    async def read(self, key: str, offset: int = 0) -> AsyncIterator[bytes]:
        """The object's bytes; a connection lost mid-way resumes where it stopped, from the
        same version of the object (If-Match its ETag)."""
        name = self._key(key)
        etag: str | None = None
        position = offset
        failures = 0
        while True:
            extra: dict[str, str] = {"Range": f"bytes={position}-"} if position else {}
            if etag is not None:
                extra["IfMatch"] = etag
            try:
                reply = await self._call(
                    f"read {key}",
                    "get_object",
                    Key=name,
                    **extra,
                )
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code in _PRECONDITION:
                    message = f"cannot read {key}: it was replaced while being read"
                    raise StorageError(message, None) from None
                if code == "InvalidRange":  # reading from the very end of the file
                    return
                raise NotFound(f"no stored file {key}") from None
            etag = reply["ETag"]
            body = reply["Body"]
            try:
                while chunk := await body.read(READ_CHUNK):
                    position += len(chunk)
                    failures = 0
                    yield chunk
                return
            except (TimeoutError, OSError, BotoCoreError, aiohttp.ClientError) as exc:
                failures += 1
                if failures > self._retries:
                    raise StorageError(f"cannot read {key} ({self.where}): {exc}", None) from exc
                await asyncio.sleep(min(0.5 * 2**failures, 10.0))
            finally:
                body.close()

    # -- listing and deleting -----------------------------------------------------------

    async def keys(self, prefix: str) -> list[str]:
        folder = self._key(check_prefix(prefix)) + "/"
        strip = len(self._prefix) + 1 if self._prefix else 0
        found: list[str] = []
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = await self._call(
                f"list {prefix}",
                "list_objects_v2",
                Prefix=folder,
                **extra,
            )
            found.extend(item["Key"][strip:] for item in page.get("Contents", ()))
            if not page.get("IsTruncated"):
                return sorted(found)
            token = page["NextContinuationToken"]

    async def delete(self, key: str) -> bool:
        if await self.info(key) is None:
            return False
        name = self._key(key)
        await self._call(f"delete {key}", "delete_object", Key=name)
        return True

    async def delete_prefix(self, prefix: str) -> list[str]:
        keys = await self.keys(prefix)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes 1000 keys at most
            batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            reply = await self._call(
                f"delete {prefix}",
                "delete_objects",
                Delete={"Objects": batch, "Quiet": True},
            )
            if reply.get("Errors"):
                first = reply["Errors"][0]
                raise StorageError(
                    f"cannot delete {first.get('Key')} ({self.where}): {first.get('Message')}",
                    None,
                )
        return keys

    async def close(self) -> None:
        self._client = None
        await self._stack.aclose()
