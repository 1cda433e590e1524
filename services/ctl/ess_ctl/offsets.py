"""`essctl offsets`: committed offset, end offset and lag per consumer group and partition;
`essctl offsets reset`: move a group's committed offsets, as `kafka-consumer-groups
--reset-offsets` does.

    essctl offsets [--group G ...] [--json]
    essctl offsets reset --group G --topic T [--partition P ...]
        (--to-datetime X | --to-offset N | --shift-by N | --to-earliest | --to-latest)
        [--dry-run | --execute] [--json]

`essctl offsets` shows the groups that committed offsets on the pipeline's
topics (those under `ESS_TOPIC_PREFIX`): the sinks (`ess-sink-local`,
`ess-sink-cloud`), their replay groups, the gap detector, the cache. Read-only.

`reset` prints the plan (a dry run) unless `--execute` is given; the rules
are Kafka's own (`ess_ctl.offset_plan`). Like Kafka's tool it refuses while the
group has members: a running consumer would overwrite the reset with its next
commit. The commit itself is a group-less commit (generation -1), which the
broker also rejects for a group that gained a member in the meantime.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ess_common.kafka_offsets import offset_reader
from ess_common.logs import error_line
from ess_common.settings import CommonSettings
from ess_ctl.cli import Exit, Parser
from ess_ctl.offset_reset import register_reset
from ess_ctl.ops_args import settings_or_exit


def register(groups: argparse._SubParsersAction[Parser]) -> None:
    cmd = groups.add_parser("offsets", help="committed offsets, end offsets and lag per group")
    cmd.add_argument("--group", action="append", default=None, help="only this group (repeatable)")
    cmd.add_argument("--json", action="store_true", help="JSON on stdout")
    cmd.set_defaults(handler=run_offsets)
    register_reset(cmd.add_subparsers(dest="offsets_command", metavar="COMMAND", required=False))


def run_offsets(args: argparse.Namespace) -> int:
    settings = settings_or_exit("offsets")
    if isinstance(settings, int):
        return settings
    try:
        rows = asyncio.run(_offsets(settings, args.group))
    except KafkaError as exc:
        print(f"essctl offsets: Kafka error: {error_line(exc)}", file=sys.stderr)
        return Exit.FAILED
    if args.json:
        print(orjson.dumps({"offsets": rows}, option=orjson.OPT_INDENT_2).decode())
    else:
        _print(rows)
    return Exit.OK


async def _committed(
    admin: AIOKafkaAdminClient, groups: list[str], prefix: str
) -> dict[str, dict[TopicPartition, int]]:
    found: dict[str, dict[TopicPartition, int]] = {}
    for group in groups:
        offsets: dict[TopicPartition, Any] = await admin.list_consumer_group_offsets(group)
        mine = {
            tp: meta.offset
            for tp, meta in offsets.items()
            if tp.topic.startswith(prefix + ".") and meta.offset >= 0
        }
        if mine:
            found[group] = mine
    return found


async def _offsets(settings: CommonSettings, only: list[str] | None) -> list[dict[str, Any]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="essctl")
    await admin.start()
    try:
        groups = only or sorted(g[0] for g in await admin.list_consumer_groups())
        committed = await _committed(admin, groups, settings.topic_prefix)
    finally:
        await admin.close()
    partitions = sorted({tp for offs in committed.values() for tp in offs})
    if not partitions:
        return []
    reader = offset_reader(settings.kafka_bootstrap, client_id="essctl-offsets")
    await reader.start()
    try:
        ends: dict[TopicPartition, int] = await reader.end_offsets(partitions)
    finally:
        await reader.stop()
    rows = []
    for group in sorted(committed):
        for tp, offset in sorted(committed[group].items()):
            rows.append(
                {
                    "group": group,
                    "topic": tp.topic,
                    "partition": tp.partition,
                    "committed": offset,
                    "end": ends[tp],
                    "lag": max(0, ends[tp] - offset),
                }
            )
    return rows


def _print(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no consumer group has committed offsets on the pipeline's topics")
        return
    print(f"{'group':<32} {'topic':<36} {'part':>4} {'committed':>12} {'end':>12} {'lag':>10}")
    for r in rows:
        print(
            f"{r['group']:<32} {r['topic']:<36} {r['partition']:>4} {r['committed']:>12,}"
            f" {r['end']:>12,} {r['lag']:>10,}"
        )
    per_group: dict[str, int] = {}
    for r in rows:
        per_group[r["group"]] = per_group.get(r["group"], 0) + r["lag"]
    print("total lag: " + ", ".join(f"{g} {lag:,}" for g, lag in per_group.items()))
