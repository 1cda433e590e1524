"""Connections to the two TimescaleDB clusters, reconnected lazily after a failure.

One cluster being down must not stop the detector from reporting on the
other: `get()` returns None (after logging once per outage) and the caller
carries on with the clusters it has. Reconnects follow the shared jittered
backoff: while a cluster is down, `get()` answers None at once until the next
attempt is due, so a dead cluster costs no connect timeout per query.
"""

from __future__ import annotations

import logging
import time

import asyncpg
from pydantic import SecretStr

from ess_common.backoff import Backoff
from ess_common.clusters import Cluster
from ess_common.db import DbTimeouts, connect
from ess_common.db_errors import DB_FAILURES

log = logging.getLogger(__name__)


class ClusterLink:
    def __init__(self, cluster: Cluster, dsn: SecretStr, timeouts: DbTimeouts, app: str) -> None:
        self.cluster = cluster
        self._dsn = dsn
        self._timeouts = timeouts
        self._app = app
        self._conn: asyncpg.Connection | None = None
        self.down_since: float | None = None
        self.backoff = Backoff(0.5, 15.0)
        self._next_attempt = 0.0

    async def get(self) -> asyncpg.Connection | None:
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        if time.monotonic() < self._next_attempt:
            return None
        try:
            self._conn = await connect(
                self._dsn, timeouts=self._timeouts, application_name=self._app
            )
        except DB_FAILURES as exc:
            if self.down_since is None:
                log.error("cluster %s unreachable: %s", self.cluster, exc)  # noqa: TRY400 - no traceback
            self.down_since = self.down_since or time.monotonic()
            self._next_attempt = time.monotonic() + self.backoff.next_delay()
            return None
        if self.down_since is not None:
            log.info("cluster %s reachable again", self.cluster)
        self.down_since = None
        self.backoff.reset()
        return self._conn

    def failed(self) -> None:
        """The last query failed: drop the connection, reconnect next time."""
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    @property
    def up(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
