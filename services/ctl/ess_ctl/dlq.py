"""`essctl dlq`: list, show and re-drive the dead-letter topic's messages.

    essctl dlq list [FILTERS] [--limit N] [--json]
    essctl dlq show PARTITION:OFFSET [--json]
    essctl dlq replay --cluster local|cloud [FILTERS] [--dry-run] [--json]

FILTERS: `--reason R` (repeatable), `--table T` (the origin topic's table),
`--partition P` (the origin partition), `--sink C` (the cluster whose sink
dead-lettered it), `--from T` / `--to T` (when it was dead-lettered, UTC).

`replay` re-drives the selected messages (by default those the chosen
cluster dead-lettered) into that cluster through the sink's own path: the
sink's decoder and slot bounds (`ESS_SINK_MAX_FUTURE_S`, `ESS_SINK_MAX_AGE_S`)
and `write_batch` with its isolation of refused rows, once the cause is fixed
(a widened bound, a column that can hold the value, a fixed producer). Each
run's counts go to the Pushgateway at `ESS_PUSHGATEWAY_URL` (`ess_ctl.pushed`). It is
idempotent: rows already present are left as they are (`present`), so running
it twice changes nothing. Messages that still fail are reported with their
reason and left in the DLQ (not dead-lettered again). `--dry-run` shows what
would be re-driven. Exit 0 when every selected message is now in the cluster,
1 when some still fail, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from ess_common.clusters import Cluster
from ess_common.db import DbTimeouts, connect
from ess_common.db_errors import DB_FAILURES
from ess_common.kafka_offsets import UnknownTopicError, assign_topics, offset_bounds, offset_reader
from ess_common.logs import error_line
from ess_common.topics import dlq_topic, table_of_topic, telemetry_topic
from ess_ctl.cli import Exit, Parser
from ess_ctl.ops_args import fail_usage, one_cluster, one_table, settings_or_exit, utc_time
from ess_ctl.progress import ProgressLine
from ess_ctl.pushed import REDRIVE_OUTCOMES, push_redrive
from ess_tables.batch import BatchDecoder, DecodedBatch, Poison
from ess_tables.settings import SlotBoundsSettings
from ess_tables.writer import write_batch

WRITE_BATCH = 5000


@dataclass(frozen=True)
class DeadLetter:
    """One DLQ message: where it is, why it is there, where it came from."""

    partition: int  # of the DLQ topic
    offset: int
    at: datetime  # when it was dead-lettered
    headers: dict[str, str]
    key: bytes | None
    value: bytes

    @property
    def reason(self) -> str:
        return self.headers.get("reason", "?")

    @property
    def origin(self) -> str:
        h = self.headers
        return f"{h.get('topic', '?')}[{h.get('partition', '?')}]@{h.get('offset', '?')}"

    def summary(self) -> dict[str, Any]:
        return {
            "id": f"{self.partition}:{self.offset}",
            "at": self.at.isoformat(),
            **self.headers,
        }


def register(groups: argparse._SubParsersAction[Parser]) -> None:
    cmd = groups.add_parser("dlq", help="list, show and re-drive dead-lettered messages")
    sub = cmd.add_subparsers(dest="dlq_command", metavar="COMMAND", required=True)
    listing = sub.add_parser("list", help="dead letters, newest last, with filters")
    _filters(listing)
    listing.add_argument("--limit", type=int, default=100, help="at most this many (last N)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=run_list)
    show = sub.add_parser("show", help="one message with its headers")
    show.add_argument("id", type=_letter_id, help="PARTITION:OFFSET of the DLQ topic")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=run_show)
    replay = sub.add_parser("replay", help="re-drive selected messages into a cluster")
    replay.add_argument("--cluster", type=one_cluster, required=True)
    _filters(replay)
    replay.add_argument("--dry-run", action="store_true", help="show the selection only")
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(handler=run_replay)


def _filters(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("--reason", action="append", help="repeatable")
    cmd.add_argument("--table", type=one_table, help="origin table (topic)")
    cmd.add_argument("--partition", type=int, help="origin partition")
    cmd.add_argument("--sink", type=one_cluster, help="the cluster that dead-lettered it")
    cmd.add_argument("--from", dest="start", type=utc_time, help="dead-lettered at or after")
    cmd.add_argument("--to", dest="end", type=utc_time, help="dead-lettered before")


def _letter_id(text: str) -> tuple[int, int]:
    try:
        partition, offset = text.split(":")
        return int(partition), int(offset)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not PARTITION:OFFSET (e.g. 0:17)") from None


def _selected(letter: DeadLetter, args: argparse.Namespace, prefix: str) -> bool:
    h = letter.headers
    sink = args.sink or getattr(args, "cluster", None)
    if args.reason and letter.reason not in args.reason:
        return False
    if args.table is not None and h.get("topic") != telemetry_topic(args.table, prefix):
        return False
    if args.partition is not None and h.get("partition") != str(args.partition):
        return False
    if sink is not None and h.get("sink") != sink:
        return False
    if args.start is not None and letter.at < args.start:
        return False
    return args.end is None or letter.at < args.end


async def _read_all(reader: AIOKafkaConsumer, topic: str) -> list[DeadLetter]:
    """Every message of the DLQ topic, from its first retained offset to its end."""
    partitions = await assign_topics(reader, [topic])
    begin, end = await offset_bounds(reader, partitions)
    pending = {tp for tp in partitions if end[tp] > begin[tp]}
    for tp in pending:
        reader.seek(tp, begin[tp])
    letters: list[DeadLetter] = []
    while pending:
        fetched = await reader.getmany(*pending, timeout_ms=2000)
        if not fetched:
            break
        for tp, records in fetched.items():
            for r in records:
                if r.offset < end[tp]:
                    letters.append(
                        DeadLetter(
                            tp.partition,
                            r.offset,
                            datetime.fromtimestamp(r.timestamp / 1000, UTC),
                            {k: v.decode(errors="replace") for k, v in r.headers},
                            r.key,
                            r.value or b"",
                        )
                    )
            if await reader.position(tp) >= end[tp]:
                pending.discard(tp)
    return sorted(letters, key=lambda x: (x.at, x.partition, x.offset))


async def _letters(bootstrap: str, prefix: str) -> list[DeadLetter]:
    reader = offset_reader(bootstrap, client_id="essctl-dlq")
    await reader.start()
    try:
        return await _read_all(reader, dlq_topic(prefix))
    finally:
        await reader.stop()


def _dump(doc: Any) -> None:
    print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())


def _load(command: str, args: argparse.Namespace) -> tuple[SlotBoundsSettings, list[DeadLetter]]:
    settings = settings_or_exit(f"dlq {command}", SlotBoundsSettings)
    if isinstance(settings, int):
        raise SystemExit(settings)
    try:
        letters = asyncio.run(_letters(settings.kafka_bootstrap, settings.topic_prefix))
    except UnknownTopicError as exc:
        raise SystemExit(fail_usage(f"dlq {command}", str(exc))) from None
    return settings, letters


def run_list(args: argparse.Namespace) -> int:
    settings, letters = _load("list", args)
    chosen = [x for x in letters if _selected(x, args, settings.topic_prefix)][-args.limit :]
    if args.json:
        _dump({"dead_letters": [x.summary() for x in chosen], "shown": len(chosen)})
        return Exit.OK
    print(f"{'id':<10} {'dead-lettered at (UTC)':<26}{'reason':<20}{'sink':<7}origin / detail")
    for x in chosen:
        print(
            f"{x.partition}:{x.offset:<8} {x.at.isoformat(timespec='seconds'):<26}"
            f"{x.reason:<20}{x.headers.get('sink', '?'):<7}{x.origin}"
            f"  {x.headers.get('detail', '')[:80]}"
        )
    by_reason = Counter(x.reason for x in chosen)
    print(f"{len(chosen)} shown: {dict(by_reason)}")
    return Exit.OK


def run_show(args: argparse.Namespace) -> int:
    _, letters = _load("show", args)
    partition, offset = args.id
    found = [x for x in letters if (x.partition, x.offset) == (partition, offset)]
    if not found:
        return fail_usage("dlq show", f"no dead letter {partition}:{offset}")
    x = found[0]
    if args.json:
        doc = {**x.summary(), "key": (x.key or b"").decode(errors="replace")}
        _dump({**doc, "value": x.value.decode(errors="replace")})
        return Exit.OK
    print(f"dead letter {partition}:{offset}, {x.at.isoformat()}")
    for name, value in x.headers.items():
        print(f"  {name}: {value}")
    print(f"  key: {(x.key or b'').decode(errors='replace')}")
    print(f"  value: {x.value.decode(errors='replace')}")
    return Exit.OK


@dataclass
class RedriveCounts:
    selected: int = 0
    inserted: int = 0
    present: int = 0  # already in the cluster (a second re-drive, or healed meanwhile)
    still_failing: int = 0
    still_failing_by_reason: Counter[str] | None = None


class _Origin:
    """What `BatchDecoder` and `Poison` need of a record, rebuilt from the headers."""

    def __init__(self, letter: DeadLetter) -> None:
        self.topic = letter.headers.get("topic", "")
        self.partition = int(letter.headers.get("partition", "0"))
        self.offset = int(letter.headers.get("offset", "0"))
        self.key = letter.key
        self.value = letter.value


async def _redrive(
    settings: SlotBoundsSettings, cluster: Cluster, letters: list[DeadLetter]
) -> RedriveCounts:
    decoder = BatchDecoder(settings.topic_prefix, settings.bounds)
    counts = RedriveCounts(selected=len(letters), still_failing_by_reason=Counter())
    assert counts.still_failing_by_reason is not None
    conn = await connect(
        settings.dsn(cluster), timeouts=DbTimeouts(command_s=300.0), application_name="essctl-dlq"
    )
    line = ProgressLine(f"dlq replay into {cluster}")
    try:
        for start in range(0, len(letters), WRITE_BATCH):
            batch = DecodedBatch()
            now = datetime.now(UTC)
            for letter in letters[start : start + WRITE_BATCH]:
                origin = _Origin(letter)
                try:
                    table = table_of_topic(origin.topic, settings.topic_prefix)
                except ValueError:
                    batch.poison.append(Poison(origin, "bad_table", origin.topic))
                    continue
                taken = decoder.decode(table, origin, now)
                if isinstance(taken, Poison):
                    batch.poison.append(taken)
                else:
                    batch.add_row(table, taken, origin)
            written = await write_batch(conn, batch.rows)
            for result in written.results.values():
                counts.inserted += result.inserted
                counts.present += result.duplicates
            failing = [p.reason for p in batch.poison] + ["db_rejected"] * len(written.rejected)
            counts.still_failing += len(failing)
            counts.still_failing_by_reason.update(failing)
            done = min(start + WRITE_BATCH, len(letters))
            line.update(done, len(letters), f"inserted {counts.inserted:,}")
        line.finish(len(letters), len(letters), f"inserted {counts.inserted:,}")
    finally:
        await conn.close()
    return counts


def run_replay(args: argparse.Namespace) -> int:
    settings, letters = _load("replay", args)
    chosen = [x for x in letters if _selected(x, args, settings.topic_prefix)]
    out: dict[str, Any] = {
        "cluster": args.cluster,
        "selected": len(chosen),
        "by_reason": dict(Counter(x.reason for x in chosen)),
    }
    if args.dry_run or not chosen:
        if args.json:
            _dump({**out, "dead_letters": [x.summary() for x in chosen], "dry_run": True})
        else:
            print(f"would re-drive {len(chosen)} messages into {args.cluster}: {out['by_reason']}")
        return Exit.OK
    try:
        counts = asyncio.run(_redrive(settings, args.cluster, chosen))
    except DB_FAILURES as exc:
        print(f"essctl dlq replay: {args.cluster}: {error_line(exc)}", file=sys.stderr)
        return Exit.FAILED
    out.update(
        inserted=counts.inserted,
        present=counts.present,
        still_failing=counts.still_failing,
        still_failing_by_reason=dict(counts.still_failing_by_reason or {}),
    )
    if settings.pushgateway_url:
        pushed = {o: out[o] for o in REDRIVE_OUTCOMES}
        problem = push_redrive(
            settings.pushgateway_url, settings.topic_prefix, args.cluster, pushed
        )
        if problem:
            print(f"essctl dlq replay: warning: {problem}", file=sys.stderr)
    if args.json:
        _dump(out)
    else:
        print(
            f"re-drove {counts.selected:,} messages into {args.cluster}: {counts.inserted:,}"
            f" inserted, {counts.present:,} already present, {counts.still_failing:,} still"
            f" failing {out['still_failing_by_reason'] or ''}".rstrip()
        )
    return Exit.OK if counts.still_failing == 0 else Exit.FAILED
