"""The database error vocabulary: what a failure means (wait and retry, or isolate the bad rows).

Each class carries its behaviour (`retriable`, `outage`), so callers branch on
meaning and the metric label `kind` stays a small fixed set. `DB_FAILURES` is
every exception type `classify` knows, for `except` clauses at I/O boundaries
that only need "the database call failed".
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class DbErrorClass:
    kind: str  # metric label: connection | timeout | unavailable | conflict | rejected | other
    retriable: bool  # True: keep the batch, back off, reconnect, try again
    # False: some row of the batch is refused by the database; splitting finds it
    outage: bool = True  # the database cannot take writes now: pause fetching meanwhile


CONNECTION = DbErrorClass("connection", retriable=True)
TIMEOUT = DbErrorClass("timeout", retriable=True)
UNAVAILABLE = DbErrorClass("unavailable", retriable=True)  # shutting down, too many connections
# serialization failure or deadlock with another writer (a replay, a sync): just try again
CONFLICT = DbErrorClass("conflict", retriable=True, outage=False)
REJECTED = DbErrorClass("rejected", retriable=False, outage=False)
OTHER = DbErrorClass("other", retriable=True)  # e.g. a missing table: an operator can fix it
KINDS = ("connection", "timeout", "unavailable", "conflict", "rejected", "other")

# Values the server (class 22 data exception, class 23 constraint violation) or
# asyncpg's binary encoder (OverflowError: "value out of int16 range", ...)
# refuses for one row. Nothing else is ever dropped.
_ROW_REJECTIONS = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    OverflowError,
    TypeError,
    ValueError,
)


# First match wins: QueryCanceledError is also an OperatorInterventionError.
_RULES: tuple[tuple[tuple[type[BaseException], ...], DbErrorClass], ...] = (
    ((asyncpg.QueryCanceledError, TimeoutError), TIMEOUT),  # statement or command timeout
    # refused, reset, closed mid-operation, "connection is closed"
    ((asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError), CONNECTION),
    # admin or crash shutdown, "the database system is starting up", too many connections
    ((asyncpg.OperatorInterventionError, asyncpg.InsufficientResourcesError), UNAVAILABLE),
    ((asyncpg.TransactionRollbackError,), CONFLICT),  # serialization failure, deadlock
    (_ROW_REJECTIONS, REJECTED),
    ((asyncpg.PostgresError, asyncpg.InternalClientError), OTHER),
)


# Everything a call to PostgreSQL can raise that is about the database, not our code.
DB_FAILURES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


def classify(exc: BaseException) -> DbErrorClass | None:
    """The class of a failure while talking to PostgreSQL; None if it is not a database error."""
    for types, kind in _RULES:
        if isinstance(exc, types):
            return kind
    return None
