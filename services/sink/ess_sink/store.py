"""One cluster's database as the sink sees it: a connection that comes back by itself.

Every operation runs through one retry loop. A failure the database can
recover from (connection refused or lost, timeout, server shutting down, too
many connections, ...) is counted by kind, the connection is dropped, the
listener is told (the lane pauses its partitions), and the operation is
tried again after a capped, jittered backoff with a fresh connection. The
batch stays in memory; nothing is committed meanwhile. If stop is requested
while the database is down the batch is abandoned (`BatchAbandonedError`): its
offsets were never committed, so it is read again by whoever owns the
partitions next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import asyncpg
from pydantic import SecretStr

from ess_common.backoff import Backoff, sleep_unless_stopped
from ess_common.db import DbTimeouts, connect
from ess_common.db_errors import DB_FAILURES, classify
from ess_common.logs import error_line
from ess_common.model import Table
from ess_tables.schema import SchemaPolicies, SchemaReport, migrate
from ess_tables.writer import BatchWrite, prepare_staging, write_batch

log = logging.getLogger(__name__)
T = TypeVar("T")


class BatchAbandonedError(Exception):
    """Stop was requested while the database was unavailable; the batch was not written."""


class OutageListener(Protocol):
    def database_down(self) -> None: ...
    def database_up(self) -> None: ...


class _NoListener:
    def database_down(self) -> None:
        pass

    def database_up(self) -> None:
        pass


class ClusterStore:
    def __init__(
        self,
        dsn: SecretStr,
        timeouts: DbTimeouts,
        application_name: str,
        backoff: Backoff,
        count_error: Callable[[str], None],
    ) -> None:
        self._dsn = dsn
        self._timeouts = timeouts
        self._application_name = application_name
        self._backoff = backoff
        self._count_error = count_error
        self._conn: asyncpg.Connection | None = None
        self._down_since: float | None = None
        self._staging_ready = False

    @property
    def available(self) -> bool:
        return self._down_since is None and self._conn is not None and not self._conn.is_closed()

    async def open(
        self, stop: asyncio.Event, policies: SchemaPolicies | None
    ) -> SchemaReport | None:
        """Connect (waiting for the database if needed) and migrate when `policies` is given."""

        async def prepare(conn: asyncpg.Connection) -> SchemaReport | None:
            return await migrate(conn, policies) if policies is not None else None

        return await self._retrying(prepare, stop, _NoListener())

    async def write(
        self,
        tables: Mapping[Table, Sequence[tuple[Any, ...]]],
        stop: asyncio.Event,
        listener: OutageListener,
    ) -> BatchWrite:
        """Write one batch; returns only once it is committed in the database."""

        async def write(conn: asyncpg.Connection) -> BatchWrite:
            if not self._staging_ready:
                await prepare_staging(conn)
                self._staging_ready = True
            return await write_batch(conn, tables, staging_ready=True)

        return await self._retrying(write, stop, listener)

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(*DB_FAILURES):
                await asyncio.wait_for(conn.close(), self._timeouts.connect_s)
            if not conn.is_closed():
                conn.terminate()

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._staging_ready = False  # temporary tables live as long as their session
            self._conn = await connect(
                self._dsn, timeouts=self._timeouts, application_name=self._application_name
            )
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None

    async def _retrying(
        self,
        operation: Callable[[asyncpg.Connection], Awaitable[T]],
        stop: asyncio.Event,
        listener: OutageListener,
    ) -> T:
        while True:
            try:
                result = await operation(await self._connection())
            except Exception as exc:  # loop boundary: classified below, unknown errors re-raised
                kind = classify(exc)
                if kind is None or not kind.retriable:
                    raise
                self._count_error(kind.kind)
                self._drop_connection()
                if kind.outage:
                    self._note_outage(kind.kind, exc)
                    listener.database_down()  # every time: a rebalance may have added partitions
                if not stop.is_set():
                    delay = self._backoff.next_delay()
                    log.info("database retry in %.1fs (%s: %s)", delay, kind.kind, error_line(exc))
                    await sleep_unless_stopped(stop, delay)
                if stop.is_set():
                    raise BatchAbandonedError(f"database unavailable ({kind.kind})") from exc
                continue
            if self._down_since is not None:
                log.warning(
                    "database available again after %.1fs; resuming",
                    time.monotonic() - self._down_since,
                )
                self._down_since = None
                self._backoff.reset()
                listener.database_up()
            return result

    def _note_outage(self, kind: str, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning(
                "database unavailable (%s: %s); keeping the batch, pausing partitions, retrying",
                kind,
                error_line(exc),
            )
