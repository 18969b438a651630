"""The `storage:` setting: where `kestra://` files live.

Kept flat (one level under `storage`) so that each field has one environment variable,
PODIUM_STORAGE_<FIELD> (`PODIUM_STORAGE_ACCESS_KEY`); the file spells fields with dashes
(`access-key:`), as every other setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MIB = 1024 * 1024


def _dashed(name: str) -> str:
    return name.replace("_", "-")


class StorageSettings(BaseModel):
    """`storage:`: `local` (the data directory, the default), `s3` (any S3-compatible object
    store: AWS S3, MinIO, Cloudflare R2, GCS's interoperability API) or `postgres` (chunked
    tables in the PostgreSQL store itself, or in the database `dsn` names)."""

    model_config = ConfigDict(extra="forbid", alias_generator=_dashed, populate_by_name=True)

    type: Literal["local", "s3", "postgres"] = "local"
    # local: the directory (default: <data-dir>/storage).
    path: Path | None = None
    # s3: credentials not given here come from the AWS environment (AWS_ACCESS_KEY_ID,
    # AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, ~/.aws), as the AWS CLI's do.
    endpoint: str | None = None  # http(s)://host:port; none: AWS S3 (or AWS_ENDPOINT_URL)
    region: str | None = None  # none: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1
    bucket: str | None = None
    prefix: str = ""  # every key under it, for several daemons (or apps) in one bucket
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    path_style: bool = False  # http://host/bucket/key (MinIO, most self-hosted stores)
    # postgres: the database (default: the store's own, when it is PostgreSQL).
    dsn: str | None = None
    # Bounded memory: files move in parts of this size (S3 multipart parts, PostgreSQL
    # chunks are a quarter of it), a few parts in flight at most.
    part_size: int = Field(default=8 * MIB, ge=5 * MIB, le=512 * MIB)
    # A failed request (connection refused, timeout, 5xx) is tried again this many times,
    # waiting 0.5 s, 1 s, 2 s... (at most 10 s) in between.
    retries: int = Field(default=6, ge=0, le=50)
    # Not local: what tasks open locally is a copy in <data-dir>/cache/storage; the least
    # recently used copies go once the copies take more than this (bytes).
    cache_size: int = Field(default=4 * 1024 * MIB, ge=0)

    @model_validator(mode="after")
    def _complete(self) -> StorageSettings:
        if self.type == "s3" and not self.bucket:
            raise ValueError("storage type s3 needs a bucket")
        if self.type != "s3":
            given = [
                _dashed(name)
                for name in ("endpoint", "region", "bucket", "access_key", "secret_key")
                if getattr(self, name) is not None
            ]
            if given:
                raise ValueError(f"{', '.join(given)}: only for storage type s3")
        if self.type != "local" and self.path is not None:
            raise ValueError("path: only for storage type local")
        if self.type != "postgres" and self.dsn is not None:
            raise ValueError("dsn: only for storage type postgres")
        if self.dsn is not None and not self.dsn.startswith(("postgres://", "postgresql://")):
            raise ValueError("dsn: expected a postgresql:// URL")
        if self.endpoint is not None and not self.endpoint.startswith(("http://", "https://")):
            raise ValueError("endpoint: expected an http:// or https:// URL")
        return self
