"""The same messages delivered twice, then the whole topic replayed from offset 0:
row counts and contents stay exactly as after the first delivery, in both clusters."""

from __future__ import annotations

from ess_common.clusters import Cluster
from ess_common.kafka import ReadingProducer
from ess_common.settings import CommonSettings
from ess_common.synthetic import readings, seed_fleet
from ess_sink.service import SinkService
from helpers.common import DatabaseFactory, pipeline_topics, unique
from helpers.sink import counter_total, run_sink_until, sink_settings
from helpers.sinkdata import fingerprints, messages, produce, recent_slot, row_count


async def test_duplicates_and_a_full_replay_leave_both_clusters_unchanged(
    settings: CommonSettings, topic_prefix: str, make_database: DatabaseFactory
) -> None:
    batch = messages(readings(seed_fleet(), recent_slot(3), seconds=30), topic_prefix)
    unique_readings = len(batch)
    async with pipeline_topics(settings.kafka_bootstrap, topic_prefix):
        async with ReadingProducer(settings.kafka_bootstrap, topic_prefix) as producer:
            await produce(producer, batch)
            await produce(producer, batch)  # every message delivered a second time
        in_topic = 2 * unique_readings

        clusters: tuple[Cluster, ...] = ("local", "cloud")
        for cluster in clusters:
            dsn = await make_database(cluster)

            async def everything_seen(service: SinkService) -> bool:
                seen = counter_total(service, "rows_written") + counter_total(service, "duplicates")
                return seen >= in_topic

            first = await run_sink_until(
                sink_settings(settings, cluster, dsn, topic_prefix, unique("g")), everything_seen
            )
            assert counter_total(first, "rows_written") == unique_readings
            assert counter_total(first, "duplicates") == unique_readings
            assert await row_count(dsn) == unique_readings
            before = await fingerprints(dsn)

            # A new consumer group reads the whole topic again from offset 0.
            replay = await run_sink_until(
                sink_settings(settings, cluster, dsn, topic_prefix, unique("g")), everything_seen
            )
            assert counter_total(replay, "rows_written") == 0
            assert counter_total(replay, "duplicates") == in_topic
            after = await fingerprints(dsn)
            assert after == before  # same rows, same values, not even rewritten (written_at)
            assert all(fp.rows == fp.distinct_keys for fp in after.values())
