"""The query workload an index is chosen for, and the candidates it implies (pure, no I/O).

A workload is a list of SELECT statements with how often each ran: from
`pg_stat_statements` (normalised, `$n` placeholders), from a query log, or the
project's own known query shapes when nothing is recorded. From each statement
we take the columns it filters on, equality (`=`, `IN`, `= ANY`) or range
(`<`, `<=`, `>`, `>=`, `BETWEEN`), and propose one composite index per
statement: its equality columns first (the most used first), then the time
column. Only names found in the table's catalog columns are ever matched, so
nothing here turns query text into identifiers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["eq", "range"]
TIME_COLUMN = "ts"
MAX_INCLUDE = 8  # wider than this, a covering index costs more than the heap reads it saves
_OPERATOR = r"(?P<op>=\s*ANY\b|=|<=|>=|<(?!>)|>|\bBETWEEN\b|\bIN\s*\()"
_LOG_STATEMENT = re.compile(r"(?:statement|execute [^:]*):\s*(?P<sql>.+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Query:
    sql: str
    calls: int = 1
    source: str = "known"  # pg_stat_statements | log | known
    name: str = ""  # known shapes have one ("dashboard per-device range", ...)


@dataclass(frozen=True)
class Predicate:
    table: str
    column: str
    kind: Kind


@dataclass(frozen=True)
class Candidate:
    table: str
    columns: tuple[str, ...]
    include: tuple[str, ...] = ()  # the other columns the queries read: an index-only scan
    queries: tuple[Query, ...] = field(default=(), compare=False)

    @property
    def equality(self) -> tuple[str, ...]:
        return self.columns[:-1] if self.columns[-1] == TIME_COLUMN else self.columns


def tables_in(sql: str, tables: Iterable[str]) -> list[str]:
    """Which of `tables` the statement reads (FROM or JOIN, optionally schema-qualified)."""
    found = []
    for table in tables:
        pattern = rf'\b(?:FROM|JOIN)\s+(?:\w+\.)?"?{re.escape(table)}"?(?![\w.])'
        if re.search(pattern, sql, re.IGNORECASE):
            found.append(table)
    return found


def is_select(sql: str) -> bool:
    """One SELECT (or WITH ... SELECT) statement: what may be explained and costed."""
    body = sql.strip().rstrip(";").strip()
    return bool(re.match(r"(SELECT|WITH)\b", body, re.IGNORECASE)) and ";" not in body


def predicates(sql: str, columns: Mapping[str, Sequence[str]]) -> list[Predicate]:
    """Filter predicates on the catalog `columns` of each table the statement reads."""
    text = re.sub(r"'(?:[^']|'')*'", "''", sql)  # a literal can hold anything: blank it
    where = re.split(r"\bWHERE\b", text, maxsplit=1, flags=re.IGNORECASE)
    if len(where) < 2:
        return []
    found: list[Predicate] = []
    for table in tables_in(text, columns):
        for column in columns[table]:
            pattern = rf'(?<![\w."])(?:\w+\.)?"?{re.escape(column)}"?\s*{_OPERATOR}'
            kinds = {_kind(m.group("op")) for m in re.finditer(pattern, where[1], re.IGNORECASE)}
            found.extend(Predicate(table, column, k) for k in sorted(kinds))
    return found


def _kind(op: str) -> Kind:
    head = op.strip().upper()
    return "eq" if head.startswith(("=", "IN")) else "range"


def column_usage(
    queries: Sequence[Query], columns: Mapping[str, Sequence[str]]
) -> dict[str, Counter[tuple[str, Kind]]]:
    """Per table: how often (calls) each column is filtered on, by kind."""
    usage: dict[str, Counter[tuple[str, Kind]]] = {}
    for query in queries:
        for p in predicates(query.sql, columns):
            usage.setdefault(p.table, Counter())[(p.column, p.kind)] += query.calls
    return usage


def candidates(queries: Sequence[Query], columns: Mapping[str, Sequence[str]]) -> list[Candidate]:
    """One composite index per distinct filter shape: equality columns, then the time column;
    it includes what every query of that shape reads (when that fits), so one index serves all."""
    usage = column_usage(queries, columns)
    shapes: dict[tuple[str, tuple[str, ...]], list[tuple[Query, list[str] | None]]] = {}
    for query in queries:
        by_table: dict[str, list[Predicate]] = {}
        for p in predicates(query.sql, columns):
            by_table.setdefault(p.table, []).append(p)
        for table, preds in by_table.items():
            order = list(columns[table])
            equal = {p.column for p in preds if p.kind == "eq"}
            ranged = {p.column for p in preds if p.kind == "range"} - equal
            if not equal:
                continue  # a pure time range: the hypertable's own time index serves it
            key = usage[table]
            cols = sorted(equal, key=lambda c: (-key[(c, "eq")], order.index(c)))
            if TIME_COLUMN in ranged:
                cols.append(TIME_COLUMN)
            elif ranged:
                cols.append(min(ranged, key=lambda c: (-key[(c, "range")], order.index(c))))
            read = referenced_columns(query.sql, order)
            shapes.setdefault((table, tuple(cols)), []).append((query, read))
    return [
        Candidate(
            t, cols, _include(cols, [r for _, r in found], columns[t]), tuple(q for q, _ in found)
        )
        for (t, cols), found in shapes.items()
    ]


def _include(
    key: Sequence[str], reads: Sequence[list[str] | None], order: Sequence[str]
) -> tuple[str, ...]:
    """The columns the queries read beyond the key, in table order, if at most MAX_INCLUDE."""
    wanted = {c for read in reads if read is not None for c in read} - set(key)
    if not 0 < len(wanted) <= MAX_INCLUDE:
        return ()
    return tuple(c for c in order if c in wanted)


def referenced_columns(sql: str, columns: Sequence[str]) -> list[str] | None:
    """Every catalog column the statement names (in table order); None for `SELECT *`."""
    text = re.sub(r"'(?:[^']|'')*'", "''", sql)
    if re.search(r"(?:SELECT|\)|,)\s*\*", text, re.IGNORECASE):
        return None
    return [c for c in columns if re.search(rf'(?<![\w$])"?{re.escape(c)}"?(?!\w)', text)]


def covering_index(
    candidate: Candidate, existing: Mapping[str, tuple[Sequence[str], Sequence[str]]]
) -> str | None:
    """The existing index (name -> key columns, included columns) with the same leading
    columns (equality ones in any order) that also holds every column to include."""
    equal = set(candidate.equality)
    n = len(candidate.equality)
    tail = candidate.columns[n:]
    for name, (cols, included) in existing.items():
        if len(cols) < len(candidate.columns) or set(cols[:n]) != equal:
            continue
        if tuple(cols[n : n + len(tail)]) != tail:
            continue
        if set(candidate.include) <= set(cols) | set(included):
            return name
    return None


def parse_log(text: str) -> list[Query]:
    """Statements from a query log: PostgreSQL's `LOG: statement: ...` lines, or plain SQL
    separated by `;` (comments and blank lines ignored). Repeated statements are counted."""
    statements: list[str] = []
    if _LOG_STATEMENT.search(text):
        for line in text.splitlines():
            m = _LOG_STATEMENT.search(line)
            if m:
                statements.append(m.group("sql").strip().rstrip(";"))
    else:
        cleaned = "\n".join(ln for ln in text.splitlines() if not ln.strip().startswith("--"))
        statements = [s.strip() for s in cleaned.split(";") if s.strip()]
    counts = Counter(" ".join(s.split()) for s in statements)
    return [Query(sql, calls, "log") for sql, calls in counts.items() if is_select(sql)]


def placeholders(sql: str, columns: Sequence[str]) -> dict[int, tuple[str, str]]:
    """`$n` -> (column, operator) for each placeholder compared with one of `columns`."""
    found: dict[int, tuple[str, str]] = {}
    for column in columns:
        pattern = (
            rf'(?<![\w."])(?:\w+\.)?"?{re.escape(column)}"?\s*(=\s*ANY|=|<=|>=|<|>)\s*\(?\s*\$(\d+)'
        )
        for m in re.finditer(pattern, sql, re.IGNORECASE):
            found.setdefault(int(m.group(2)), (column, " ".join(m.group(1).upper().split())))
    return found


def parameter_count(sql: str) -> int:
    return max((int(n) for n in re.findall(r"\$(\d+)", sql)), default=0)


def why(candidate: Candidate, usage: Counter[tuple[str, Kind]]) -> str:
    """In words: which filters the index serves and why its column order."""
    eq = ", ".join(f"{c} = (x{usage[(c, 'eq')]:,})" for c in candidate.equality)
    tail = candidate.columns[len(candidate.equality) :]
    ranged = f"; then the range on {tail[0]} (x{usage[(tail[0], 'range')]:,})" if tail else ""
    return (
        f"queries on {candidate.table} filter on {eq}{ranged}: equality columns first, so one"
        " index descent reaches exactly the matching rows"
        + (", already in time order" if tail == (TIME_COLUMN,) else "")
        + (
            f"; INCLUDE ({', '.join(candidate.include)}) holds every other column they read,"
            " so an index-only scan never visits the table's pages (rows of one device are"
            " spread over every page of a time range there)"
            if candidate.include
            else ""
        )
    )
