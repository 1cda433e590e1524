"""The archive's bucket through obstore (Rust's `object_store`): get, put, list, delete.

Why obstore: typed, one small wheel with no Python dependencies (aiobotocore
drags botocore and aiohttp in), conditional PUTs (`If-Match` on the manifest's
ETag) built in, and it speaks S3, GCS and Azure alike. Its blocking calls run
in a worker thread (`asyncio.to_thread`; see the methods for why not its
`*_async` ones); the archive makes a few calls per flush, not per reading.

Errors come out as two kinds: `ArchiveUnavailable` (the store cannot be
reached or answered 5xx/timeout: retriable, the caller holds its batch and
waits) and `ArchiveConflict` (a conditional PUT lost to another writer:
read again and redo). obstore's own retries are kept short so an outage is
seen within seconds and handled by the caller's backoff instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    NotFoundError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import S3Store

from ess_archive_layout.settings import ArchiveStoreSettings

if TYPE_CHECKING:
    from obstore import PutMode


class ArchiveError(Exception):
    retriable = False


class ArchiveUnavailable(ArchiveError):  # noqa: N818 - a state, like aiokafka's errors
    """The object store cannot be reached or failed the request; try again later."""

    retriable = True


class ArchiveConflict(ArchiveError):  # noqa: N818
    """A conditional write found a newer version: read it again and redo the change."""

    retriable = True


class ArchiveRefused(ArchiveError):  # noqa: N818
    """Credentials or permissions are wrong: an operator has to fix the settings."""


@dataclass(frozen=True)
class Versioned:
    data: bytes
    e_tag: str | None


@dataclass(frozen=True)
class StoredObject:
    path: str
    size: int
    last_modified_s: float


# obstore raises its own classes and, for some, Python's (FileNotFoundError, PermissionError,
# ConnectionError, TimeoutError): both are translated.
_FAILURES = (BaseError, OSError)
_NOT_FOUND = (NotFoundError, FileNotFoundError)


class ObjectStore(Protocol):
    """What the reader and the writer need of a bucket (`ArchiveStore`, or a fake in tests)."""

    async def get(self, path: str) -> Versioned | None: ...
    async def put(
        self, path: str, data: bytes, *, if_match: str | None = None, create: bool = False
    ) -> str | None: ...
    async def list_objects(self, prefix: str) -> list[StoredObject]: ...
    async def folders(self, prefix: str | None) -> list[str]: ...
    async def delete(self, paths: Sequence[str]) -> None: ...


def _translate(exc: BaseException, what: str) -> ArchiveError:
    if isinstance(exc, PreconditionError | AlreadyExistsError | FileExistsError):
        return ArchiveConflict(f"{what}: changed by another writer")
    if isinstance(exc, PermissionDeniedError | UnauthenticatedError | PermissionError):
        return ArchiveRefused(f"{what}: {type(exc).__name__}")
    return ArchiveUnavailable(f"{what}: {str(exc).splitlines()[0][:300]}")


class ArchiveStore:
    """One bucket (and prefix). Every method raises only `ArchiveError`s."""

    def __init__(self, settings: ArchiveStoreSettings) -> None:
        s = settings
        if not s.archive_s3_bucket:
            raise ValueError("ESS_ARCHIVE_S3_BUCKET is not set")
        config: dict[str, Any] = {"region": s.archive_s3_region}
        if s.archive_s3_endpoint:
            config["endpoint"] = s.archive_s3_endpoint
        if s.archive_s3_access_key_id and s.archive_s3_secret_access_key:
            config["access_key_id"] = s.archive_s3_access_key_id.get_secret_value()
            config["secret_access_key"] = s.archive_s3_secret_access_key.get_secret_value()
        self.bucket = s.archive_s3_bucket
        self.prefix = s.archive_s3_prefix
        self._store = S3Store(
            s.archive_s3_bucket,
            prefix=s.archive_s3_prefix.rstrip("/") or None,
            config=config,  # type: ignore[arg-type]
            client_options={
                "allow_http": bool(
                    s.archive_s3_endpoint and s.archive_s3_endpoint.startswith("http:")
                ),
                "timeout": timedelta(seconds=s.archive_s3_timeout_s),
                "connect_timeout": timedelta(seconds=s.archive_s3_connect_timeout_s),
            },
            retry_config={
                "max_retries": 2,
                "retry_timeout": timedelta(seconds=s.archive_s3_timeout_s),
                "backoff": {
                    "init_backoff": timedelta(milliseconds=200),
                    "max_backoff": timedelta(seconds=2),
                    "base": 2,
                },
            },
        )

    def __repr__(self) -> str:
        return f"ArchiveStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    # obstore's blocking calls in a worker thread, not its *_async ones: those resolve their
    # asyncio futures from tokio's threads, which may still be calling into Python while the
    # interpreter finalizes (seen: an abort at exit, 1 run in 5); a blocking call returns in
    # the thread that made it, so tokio's threads never touch Python.

    async def get(self, path: str) -> Versioned | None:
        """The object and its ETag, or None when there is none."""
        return await asyncio.to_thread(self._get, path)

    def _get(self, path: str) -> Versioned | None:
        try:
            result = obstore.get(self._store, path)
            data = bytes(result.bytes())
        except _NOT_FOUND:
            return None
        except _FAILURES as exc:
            raise _translate(exc, f"get {path}") from None
        return Versioned(data, result.meta.get("e_tag"))

    async def put(
        self, path: str, data: bytes, *, if_match: str | None = None, create: bool = False
    ) -> str | None:
        """Store `data` atomically; `if_match`: only over that version, `create`: only if
        absent (else `ArchiveConflict`). Returns the new ETag. Durable when it returns."""
        mode: PutMode = "overwrite"
        if if_match is not None:
            mode = {"e_tag": if_match}
        elif create:
            mode = "create"
        return await asyncio.to_thread(self._put, path, data, mode)

    def _put(self, path: str, data: bytes, mode: PutMode) -> str | None:
        try:
            result = obstore.put(self._store, path, data, mode=mode)
        except _FAILURES as exc:
            raise _translate(exc, f"put {path}") from None
        return result.get("e_tag")

    async def list_objects(self, prefix: str) -> list[StoredObject]:
        """Every object under `prefix` (recursively)."""
        return await asyncio.to_thread(self._list_objects, prefix)

    def _list_objects(self, prefix: str) -> list[StoredObject]:
        try:
            found = obstore.list(self._store, prefix, chunk_size=1000).collect()
        except _FAILURES as exc:
            raise _translate(exc, f"list {prefix}") from None
        return [StoredObject(m["path"], m["size"], m["last_modified"].timestamp()) for m in found]

    async def folders(self, prefix: str | None) -> list[str]:
        """The next level of folders under `prefix` (without a trailing slash)."""
        return await asyncio.to_thread(self._folders, prefix)

    def _folders(self, prefix: str | None) -> list[str]:
        try:
            found = obstore.list_with_delimiter(self._store, prefix)
        except _FAILURES as exc:
            raise _translate(exc, f"list {prefix}") from None
        return [p.rstrip("/") for p in found["common_prefixes"]]

    async def delete(self, paths: Sequence[str]) -> None:
        if paths:
            await asyncio.to_thread(self._delete, list(paths))

    def _delete(self, paths: list[str]) -> None:
        try:
            obstore.delete(self._store, paths)
        except _NOT_FOUND:
            return
        except _FAILURES as exc:
            raise _translate(exc, f"delete {len(paths)} objects") from None
