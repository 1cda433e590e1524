"""The archive in tests: its settings under a private prefix of the stack's bucket, readers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from ess_archive.metrics import ArchiveMetrics
from ess_archive.settings import ArchiveSettings
from ess_archive.writer import ArchiveWriter, RollupPolicy
from ess_archive_layout.reader import ArchiveReader
from ess_archive_layout.schema import KEY_COLUMNS
from ess_archive_layout.settings import ArchiveStoreSettings
from ess_archive_layout.store import ArchiveStore
from ess_common.settings import CommonSettings, load_settings
from helpers.common import unique


def stack_store() -> ArchiveStoreSettings:
    """The local stack's bucket (`.local/stack.env`)."""
    loaded = load_settings(ArchiveStoreSettings)
    assert loaded.archive_s3_bucket, "no ESS_ARCHIVE_S3_BUCKET: run `make up` (it starts MinIO)"
    return loaded


@asynccontextmanager
async def private_prefix(
    store: ArchiveStoreSettings | None = None,
) -> AsyncIterator[ArchiveStoreSettings]:
    """The stack's bucket under a prefix of this test's own; its objects deleted afterwards."""
    settings = (store or stack_store()).model_copy(
        update={"archive_s3_prefix": unique("test").replace("_", "-") + "/"}
    )
    try:
        yield settings
    finally:
        objects = ArchiveStore(settings)
        await objects.delete([o.path for o in await objects.list_objects("")])


def archive_settings(
    base: CommonSettings, store: ArchiveStoreSettings, topic_prefix: str, group: str, **extra: Any
) -> ArchiveSettings:
    return ArchiveSettings.model_validate(
        {
            **store.model_dump(),
            "kafka_bootstrap": base.kafka_bootstrap,
            "topic_prefix": topic_prefix,
            "archive_group_id": group,
            "archive_flush_s": 1.0,
            "archive_retry_max_s": 2.0,
            **extra,
        }
    )


def archive_env(settings: ArchiveSettings, **extra: str) -> dict[str, str]:
    """Environment of a `python -m ess_archive` process with `settings`."""
    env = dict(os.environ)
    for name, raw in settings.model_dump().items():
        if raw is None:
            continue
        value = raw.get_secret_value() if isinstance(raw, SecretStr) else raw
        text = orjson.dumps(value).decode() if isinstance(value, tuple | list) else str(value)
        env[f"ESS_{name.upper()}"] = text
    return {**env, **extra}


async def archived_keys(store: ArchiveStoreSettings) -> tuple[int, int]:
    """(readings, distinct (device, slot)) a reader of the manifests gets, all days."""
    reader = ArchiveReader(ArchiveStore(store))
    rows = distinct = 0
    for pd in await reader.partition_days():
        data = (await reader.read_day(pd, KEY_COLUMNS)).data
        rows += data.num_rows
        keys = zip(data["device_id"].to_pylist(), data["ts"].to_pylist(), strict=True)
        distinct += len(set(keys))
    return rows, distinct


async def manifest_rows(store: ArchiveStoreSettings) -> int:
    """Readings the manifests list (cheap: no Parquet read)."""
    reader = ArchiveReader(ArchiveStore(store))
    days = await reader.partition_days()
    return sum([(await reader.manifest(pd)).manifest.rows for pd in days])


async def roll_up_everything(settings: ArchiveSettings) -> int:
    """Roll up every day's segments now (as the service does once they are due)."""
    store = ArchiveStore(settings)
    reader = ArchiveReader(store)
    policy = RollupPolicy(
        settings.archive_part_rows,
        0.0,
        settings.archive_row_group_rows,
        settings.archive_orphan_age_s,
    )
    writer = ArchiveWriter(store, reader, ArchiveMetrics(CollectorRegistry()), policy)
    return sum([await writer.rollup(pd, force=True) for pd in await reader.partition_days()])


def filesystem(store: ArchiveStoreSettings) -> tuple[pafs.S3FileSystem, str]:
    """pyarrow's own S3 client on the bucket, as an analyst would use it, and the root path."""
    assert store.archive_s3_endpoint
    assert store.archive_s3_access_key_id
    assert store.archive_s3_secret_access_key
    scheme, host = store.archive_s3_endpoint.split("://", 1)
    fs = pafs.S3FileSystem(
        access_key=store.archive_s3_access_key_id.get_secret_value(),
        secret_key=store.archive_s3_secret_access_key.get_secret_value(),
        endpoint_override=host,
        scheme=scheme,
        region=store.archive_s3_region,
    )
    return fs, f"{store.archive_s3_bucket}/{store.archive_s3_prefix}".rstrip("/")


def read_table_as_analyst(store: ArchiveStoreSettings, table: str) -> pa.Table:
    """Every visible Parquet file of `table` (a Hive-partitioned dataset: site and date come
    from the path; `_staging` and `_manifest.json` are skipped as readers do)."""
    fs, root = filesystem(store)
    dataset = pads.dataset(
        f"{root}/table={table}", filesystem=fs, format="parquet", partitioning="hive"
    )
    return dataset.to_table()


def store_of(env_lines: list[str]) -> ArchiveStoreSettings:
    """Archive store settings from `ESS_ARCHIVE_S3_*=...` lines (a disposable server's)."""
    values = dict(line.split("=", 1) for line in env_lines)
    prefix = "ESS_"
    return ArchiveStoreSettings.model_validate(
        {k[len(prefix) :].lower(): v for k, v in values.items()}
    )
