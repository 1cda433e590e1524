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

# Values the server refuses for one row: class 22 (data exception) and class 23
# (constraint violation). Nothing else is ever dropped. `TypeError`/`ValueError`
# are not here: raised while encoding a batch they mean our own code built a
# wrong row, and bisecting would dead-letter the whole stream for a bug.
_ROW_REJECTIONS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


def _encoder_refused_value(exc: BaseException) -> bool:
    """asyncpg's binary encoder refusing an integer no column of that type can hold
    (`OverflowError: value out of int16 range`): the row's data, as the server would."""
    return isinstance(exc, OverflowError) and str(exc).startswith("value out of ")


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
    if _encoder_refused_value(exc):
        return REJECTED
    for types, kind in _RULES:
        if isinstance(exc, types):
            return kind
    return None
