"""`essctl replay`: re-read a range of a table's topic into one cluster.

    essctl replay --cluster local|cloud --table T --from T --to T [--dry-run] [--json]
    essctl replay --cluster C --table T --partition P --from-offset A --to-offset B [...]
    ... [--submit [--wait S]]

First prints the plan (per partition: first offset, end bound, messages at
most), then replays with a progress line on stderr and prints rows inserted
and rows already present. By default essctl runs the replay itself with the
sink's own code (it works while the sink is down); `--submit` publishes the
same request on the control topic for the cluster's sink instead and follows
its status messages. Offset ranges are `[from, to)`; time ranges `[from, to)`.
Group offsets are never touched.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson
from pydantic import ValidationError

from ess_common.backoff import Backoff
from ess_common.control_topic import StatusTail, publish_request
from ess_common.db import DbTimeouts, connect
from ess_common.db_errors import DB_FAILURES
from ess_common.kafka import ReadingProducer
from ess_common.kafka_offsets import UnknownTopicError, offset_reader
from ess_common.logs import error_line
from ess_common.replay import OffsetRange, ReplayRequest, SlotRange
from ess_common.settings import CommonSettings
from ess_ctl.cli import Exit, Parser
from ess_ctl.ops_args import (
    UsageError,
    checked_range,
    fail_usage,
    one_cluster,
    one_table,
    settings_or_exit,
    utc_time,
)
from ess_ctl.progress import ProgressLine
from ess_tables.dead_letters import DeadLetters
from ess_tables.replay import (
    ReplayCounts,
    ReplayPlan,
    ReplayRejectedError,
    execute_replay,
    plan_replay,
)
from ess_tables.settings import SlotBoundsSettings


def register(groups: argparse._SubParsersAction[Parser]) -> None:
    cmd = groups.add_parser("replay", help="re-read part of a topic into one cluster (idempotent)")
    cmd.add_argument("--cluster", type=one_cluster, required=True, help="local|cloud")
    cmd.add_argument("--table", type=one_table, required=True)
    cmd.add_argument("--from", dest="start", type=utc_time, help="slot range start (UTC)")
    cmd.add_argument("--to", dest="end", type=utc_time, help="slot range end (UTC, exclusive)")
    cmd.add_argument("--partition", type=int, help="with --from-offset/--to-offset")
    cmd.add_argument("--from-offset", type=int)
    cmd.add_argument("--to-offset", type=int, help="exclusive")
    cmd.add_argument("--dry-run", action="store_true", help="print the plan only")
    cmd.add_argument("--submit", action="store_true", help="ask the cluster's sink to do it")
    cmd.add_argument("--wait", type=float, default=600.0, help="with --submit: seconds to wait")
    cmd.add_argument("--lateness", type=float, default=120.0, help="seconds read past --to")
    cmd.add_argument("--json", action="store_true", help="JSON on stdout")
    cmd.set_defaults(handler=run_replay)


def _request(args: argparse.Namespace) -> ReplayRequest:
    by_time = args.start is not None or args.end is not None
    offsets = (args.partition, args.from_offset, args.to_offset)
    by_offset = any(v is not None for v in offsets)
    if by_time == by_offset:
        raise UsageError("give either --from/--to or --partition/--from-offset/--to-offset")
    try:
        if by_time:
            if args.start is None or args.end is None:
                raise UsageError("--from and --to go together")
            checked_range(args.start, args.end)
            rng: dict[str, Any] = {"slots": SlotRange(start=args.start, end=args.end)}
        else:
            if any(v is None for v in offsets):
                raise UsageError("--partition, --from-offset and --to-offset go together")
            if args.to_offset <= args.from_offset:
                raise UsageError("--to-offset must be greater than --from-offset")
            rng = {
                "offsets": OffsetRange(
                    partition=args.partition,
                    start_offset=args.from_offset,
                    end_offset=args.to_offset,
                )
            }
        return ReplayRequest(
            cluster=args.cluster,
            table=args.table,
            reason="operator",
            requested_by="essctl",
            **rng,
        )
    except ValidationError as exc:
        raise UsageError(exc.errors()[0]["msg"]) from None


def run_replay(args: argparse.Namespace) -> int:
    try:
        request = _request(args)
    except UsageError as exc:
        return fail_usage("replay", str(exc))
    settings = settings_or_exit("replay", SlotBoundsSettings)
    if isinstance(settings, int):
        return settings
    try:
        return asyncio.run(_replay(settings, args, request))
    except UsageError as exc:
        return fail_usage("replay", str(exc))


async def _plan(settings: CommonSettings, request: ReplayRequest) -> ReplayPlan:
    reader = offset_reader(settings.kafka_bootstrap, client_id="essctl-replay-plan")
    await reader.start()
    try:
        return await plan_replay(reader, request, settings.topic_prefix)
    except (UnknownTopicError, ReplayRejectedError) as exc:
        raise UsageError(str(exc)) from None
    finally:
        await reader.stop()


async def _replay(
    settings: SlotBoundsSettings, args: argparse.Namespace, request: ReplayRequest
) -> int:
    plan = await _plan(settings, request)
    out: dict[str, Any] = {"request": request.model_dump(mode="json", exclude_none=True)}
    out["plan"] = {
        "topic": plan.topic,
        "messages_at_most": plan.messages,
        "partitions": [
            {
                "partition": s.partition,
                "from_offset": s.start,
                "to_offset": s.end,
                "messages": s.messages,
            }
            for s in plan.spans
        ],
    }
    if not args.json:
        _print_plan(plan)
    if args.dry_run:
        if args.json:
            print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return Exit.OK
    if args.submit:
        counts, state = await _submit(settings, request, args.wait)
    else:
        counts, state = await _run_here(settings, args, plan)
    out["result"] = {"state": state, **counts.as_status_fields()}
    if args.json:
        print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
    else:
        print(
            f"{state}: {counts.messages_read:,} messages read, {counts.rows_in_range:,} rows in"
            f" range, {counts.rows_inserted:,} inserted, {counts.rows_present:,} already present"
            + (f", {counts.undecodable:,} undecodable" if counts.undecodable else "")
            + (f", {counts.dead_lettered:,} dead-lettered" if counts.dead_lettered else "")
        )
    return Exit.OK if state == "completed" else Exit.FAILED


def _print_plan(plan: ReplayPlan) -> None:
    r = plan.request
    what = (
        f"slots {r.slots.start.isoformat()} .. {r.slots.end.isoformat()}" if r.slots else "offsets"
    )
    print(f"replay {plan.topic} into {r.cluster}: {what}")
    for s in plan.spans:
        print(
            f"  partition {s.partition}: offsets {s.start} .. {s.end}"
            f"  ({s.messages:,} messages at most)"
        )
    print(f"  total: {plan.messages:,} messages at most")


async def _run_here(
    settings: SlotBoundsSettings, args: argparse.Namespace, plan: ReplayPlan
) -> tuple[ReplayCounts, str]:
    """The sink's own path, run here: its slot bounds (`ESS_SINK_MAX_*`), bisection, DLQ."""
    try:
        conn = await connect(
            settings.dsn(args.cluster),
            timeouts=DbTimeouts(command_s=300.0),
            application_name="essctl-replay",
        )
    except DB_FAILURES as exc:
        print(
            f"essctl replay: cannot connect to {args.cluster}: {error_line(exc)}", file=sys.stderr
        )
        return ReplayCounts(messages_planned=plan.messages), "failed"
    reader = offset_reader(settings.kafka_bootstrap, client_id="essctl-replay")
    dlq = ReadingProducer(settings.kafka_bootstrap, settings.topic_prefix)
    line = ProgressLine("replay")
    try:
        await reader.start()
        await dlq.start()
        counts = await execute_replay(
            reader,
            conn,
            plan,
            lateness_s=args.lateness,
            progress=lambda c: line.update(
                c.messages_read, c.messages_planned, f"inserted {c.rows_inserted:,}"
            ),
            dead_letters=DeadLetters(
                dlq, settings.topic_prefix, args.cluster, backoff=Backoff(), via="replay"
            ),
            bounds=settings.bounds,
            prefix=settings.topic_prefix,
        )
        line.finish(
            counts.messages_read, counts.messages_planned, f"inserted {counts.rows_inserted:,}"
        )
        return counts, "completed"
    finally:
        await reader.stop()
        await dlq.stop()
        await conn.close()


async def _submit(
    settings: CommonSettings, request: ReplayRequest, wait_s: float
) -> tuple[ReplayCounts, str]:
    """Publish the request for the sink and follow its status messages."""
    line = ProgressLine(f"replay via sink-{request.cluster}")
    async with StatusTail(
        settings.kafka_bootstrap, settings.topic_prefix, client_id="essctl-replay-status"
    ) as tail:
        async with ReadingProducer(settings.kafka_bootstrap, settings.topic_prefix) as producer:
            await publish_request(producer, settings.topic_prefix, request)
        print(f"submitted request {request.id} on {tail.topic}", file=sys.stderr)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            for status in await tail.statuses(timeout_ms=500, request_id=request.id):
                counts = ReplayCounts(
                    status.messages_planned,
                    status.messages_read,
                    status.rows_in_range,
                    status.rows_inserted,
                    status.rows_present,
                    status.undecodable,
                )
                line.update(counts.messages_read, counts.messages_planned, status.state)
                if status.finished:
                    if status.detail:
                        print(f"sink: {status.detail}", file=sys.stderr)
                    return counts, status.state
        print(
            f"essctl replay: no completion from sink-{request.cluster} in {wait_s:.0f}s",
            file=sys.stderr,
        )
        return ReplayCounts(), "timed_out"
