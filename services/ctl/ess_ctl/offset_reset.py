"""`essctl offsets reset`: read the partitions, plan with `offset_plan`, commit if asked."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from ess_common.kafka_offsets import UnknownTopicError, assign_topics, offset_reader, offsets_at
from ess_common.logs import error_line
from ess_ctl.cli import Exit, Parser
from ess_ctl.offset_plan import PartitionState, PlanError, Reset, Target, plan
from ess_ctl.ops_args import settings_or_exit, utc_time

# Kafka's states of a group that has no member (`kafka-consumer-groups` resets only these)
INACTIVE = ("Empty", "Dead", "")


class GroupActiveError(Exception):
    """The group has members; the message names how many and the state."""


@dataclass(frozen=True)
class Request:
    group: str
    topic: str
    partitions: tuple[int, ...]  # empty: all of the topic's partitions
    target: Target
    execute: bool


def register_reset(commands: argparse._SubParsersAction[Parser]) -> None:
    cmd = commands.add_parser(
        "reset", help="move a group's committed offsets (kafka-consumer-groups --reset-offsets)"
    )
    cmd.add_argument("--group", dest="reset_group", required=True, help="the consumer group")
    cmd.add_argument("--topic", required=True, help="the topic's full name")
    cmd.add_argument(
        "--partition", type=int, action="append", default=None, help="only this one (repeatable)"
    )
    to = cmd.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-datetime", type=utc_time, help="first offset at/after this time (UTC)")
    to.add_argument("--to-offset", type=int, help="this offset (clamped to earliest..latest)")
    to.add_argument("--shift-by", type=int, help="committed offset + N (clamped; N may be < 0)")
    to.add_argument("--to-earliest", action="store_true", help="the earliest retained offset")
    to.add_argument("--to-latest", action="store_true", help="the end of the log")
    mode = cmd.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="only print the plan (the default)")
    mode.add_argument("--execute", action="store_true", help="commit the planned offsets")
    cmd.add_argument("--json", action="store_true", help="JSON on stdout")
    cmd.set_defaults(handler=run_reset)


def _target(args: argparse.Namespace) -> Target:
    if args.to_datetime is not None:
        return Target("to-datetime", at=args.to_datetime)
    if args.to_offset is not None:
        return Target("to-offset", value=args.to_offset)
    if args.shift_by is not None:
        return Target("shift-by", value=args.shift_by)
    return Target("to-earliest" if args.to_earliest else "to-latest")


def run_reset(args: argparse.Namespace) -> int:
    settings = settings_or_exit("offsets reset")
    if isinstance(settings, int):
        return settings
    request = Request(
        args.reset_group, args.topic, tuple(args.partition or ()), _target(args), args.execute
    )
    prog = "essctl offsets reset"
    try:
        resets = asyncio.run(reset_offsets(settings.kafka_bootstrap, request))
    except (UnknownTopicError, PlanError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return Exit.USAGE
    except GroupActiveError as exc:
        print(f"{prog}: refused: {exc}", file=sys.stderr)
        return Exit.FAILED
    except KafkaError as exc:
        print(f"{prog}: Kafka error: {error_line(exc)}", file=sys.stderr)
        return Exit.FAILED
    if args.json:
        doc = {
            "group": request.group,
            "strategy": request.target.strategy,
            "executed": request.execute,
            "plan": [r.as_dict() for r in resets],
        }
        print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    else:
        _print(request, resets)
    return Exit.OK


async def group_members(admin: AIOKafkaAdminClient, group: str) -> tuple[str, int]:
    """(state, number of members) of `group`, as the group coordinator sees it."""
    responses: list[Any] = await admin.describe_consumer_groups([group])
    for response in responses:
        for described in response.groups:
            _error, group_id, state, _ptype, _protocol, members = described[:6]
            if group_id == group:
                return state, len(members)
    return "", 0


async def _states(
    reader: AIOKafkaConsumer, committed: Mapping[TopicPartition, int], request: Request
) -> list[PartitionState]:
    every = await assign_topics(reader, [request.topic])
    known = {tp.partition for tp in every}
    unknown = sorted(set(request.partitions) - known)
    if unknown:
        raise UnknownTopicError(
            f"topic {request.topic!r} has no partition {', '.join(map(str, unknown))}"
            f" (it has 0..{max(known)})"
        )
    parts = [tp for tp in every if not request.partitions or tp.partition in request.partitions]
    earliest: dict[TopicPartition, int] = await reader.beginning_offsets(parts)
    latest: dict[TopicPartition, int] = await reader.end_offsets(parts)
    at: Mapping[TopicPartition, int | None] = {}
    if request.target.at is not None:
        at = await offsets_at(reader, parts, request.target.at)
    return [
        PartitionState(
            tp.topic, tp.partition, earliest[tp], latest[tp], committed.get(tp), at.get(tp)
        )
        for tp in parts
    ]


async def reset_offsets(bootstrap: str, request: Request) -> list[Reset]:
    """The plan for `request`; committed to the group when `request.execute`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="essctl-offsets-reset")
    await admin.start()
    try:
        state, members = await group_members(admin, request.group)
        if members or state not in INACTIVE:
            raise GroupActiveError(
                f"group {request.group!r} has {members} active member(s) (state {state});"
                " stop its consumers first: offsets can be reset only while a group is inactive"
            )
        found: Mapping[TopicPartition, Any] = await admin.list_consumer_group_offsets(request.group)
        committed = {tp: m.offset for tp, m in found.items() if m.offset >= 0}
    finally:
        await admin.close()
    reader = offset_reader(bootstrap, client_id="essctl-offsets-reset")
    await reader.start()
    try:
        resets = plan(await _states(reader, committed, request), request.target)
    finally:
        await reader.stop()
    if request.execute and resets:
        await _commit(bootstrap, request.group, resets)
    return resets


async def _commit(bootstrap: str, group: str, resets: list[Reset]) -> None:
    """A group-less commit (no join): the broker refuses it if the group has members."""
    committer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        client_id="essctl-offsets-reset",
    )
    await committer.start()
    try:
        offsets = {TopicPartition(r.topic, r.partition): r.new for r in resets}
        committer.assign(list(offsets))
        committer.pause(*offsets)  # never fetch: this consumer only commits
        await committer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    finally:
        await committer.stop()


def _print(request: Request, resets: list[Reset]) -> None:
    def show(value: int | None) -> str:
        return "-" if value is None else f"{value:,}"

    print(
        f"{'group':<32} {'topic':<36} {'part':>4} {'current':>12} {'new':>12}"
        f" {'earliest':>12} {'latest':>12}"
    )
    for r in resets:
        note = "  (clamped)" if r.clamped else ""
        print(
            f"{request.group:<32} {r.topic:<36} {r.partition:>4} {show(r.current):>12}"
            f" {r.new:>12,} {r.earliest:>12,} {r.latest:>12,}{note}"
        )
    if request.execute:
        print(f"committed {len(resets)} offset(s) for group {request.group}")
    else:
        print("dry run: nothing changed (add --execute to commit these offsets)")
