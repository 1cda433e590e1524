"""Each anomaly rule fires on a constructed case, once, with device, slot, value and limit;
a site of normal devices raises nothing; the site summary reflects the latest readings."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from ess_cache_layout.read import CacheReader
from ess_common.model import DeviceId, PcsValues, RackValues, Reading
from ess_common.settings import CommonSettings
from helpers.cache import (
    cache_settings,
    essctl_cache,
    migrated,
    produce,
    redis_namespace,
    running_cache,
)
from helpers.common import DatabaseFactory

SECONDS = 40
SILENT_S = 200
STALE_AFTER_S = 60  # long enough that the calm site cannot go stale while the test runs


def _rack(site: str, rack: int, ts: datetime, **changes: float) -> Reading:
    soc = 50.0 + 0.1 * (ts.second % 10)  # a smooth, slowly moving state of charge
    values = {
        "soc_pct": soc,
        "cell_v_max": 3.30,
        "cell_v_min": 3.27,
        "module_t_max_c": 31.0 + rack * 0.1,
        "module_t_min_c": 25.0,
        **changes,
    }
    return Reading(
        device=DeviceId(table="rack", site=site, bank=1, rack=rack),
        ts=ts,
        read_at=ts + timedelta(milliseconds=80),
        values=RackValues(**values),
    )


def _pcs(site: str, ts: datetime, power: float) -> Reading:
    return Reading(
        device=DeviceId(table="pcs", site=site, unit=1),
        ts=ts,
        read_at=ts + timedelta(milliseconds=80),
        values=PcsValues(active_power_w=power, soc_pct=50.0),
    )


def _fleet(end: datetime) -> tuple[list[Reading], dict[tuple[str, str], tuple[int, float, float]]]:
    """Readings up to `end`, and the anomalies they raise: (device, rule) -> slot, value, limit."""
    out: list[Reading] = []
    bad_at = end - timedelta(seconds=10)
    for i in range(SECONDS):
        ts = end - timedelta(seconds=SECONDS - 1 - i)
        out += [_rack("calm", r, ts) for r in (1, 2, 3)] + [_pcs("calm", ts, 250_000.0)]
        special = {
            1: {"cell_v_max": 3.45, "cell_v_min": 3.25},  # spread 0.2 V > 0.1
            2: {"module_t_max_c": 61.5},  # > 50 C
            3: {"module_t_min_c": -4.0},  # < 0 C
        }
        for rack, changes in special.items():
            out.append(_rack("rough", rack, ts, **(changes if ts == bad_at else {})))
        out.append(_rack("rough", 4, ts, soc_pct=3.0))  # always < 5 %: reported once
        out.append(_rack("rough", 5, ts, soc_pct=97.5))  # always > 95 %: reported once
        soc6 = 50.0 if ts < bad_at else 62.0  # one jump of +12 %, then steady
        out.append(_rack("rough", 6, ts, soc_pct=soc6))
        if i < 5:  # five readings long before the others, then silence
            out.append(_rack("rough", 7, ts - timedelta(seconds=SILENT_S)))
    slot = int(bad_at.timestamp())
    first = int((end - timedelta(seconds=SECONDS - 1)).timestamp())
    expected = {
        ("rough/bank1/rack1", "cell_voltage_spread"): (slot, 3.45 - 3.25, 0.10),
        ("rough/bank1/rack2", "module_temperature_high"): (slot, 61.5, 50.0),
        ("rough/bank1/rack3", "module_temperature_low"): (slot, -4.0, 0.0),
        ("rough/bank1/rack4", "soc_out_of_range"): (first, 3.0, 5.0),
        ("rough/bank1/rack5", "soc_out_of_range"): (first, 97.5, 95.0),
        ("rough/bank1/rack6", "soc_jump"): (slot, 12.0, 5.0),
    }
    return out, expected


async def test_each_rule_fires_once_on_its_case_and_normal_data_stays_quiet(
    settings: CommonSettings,
    kafka_admin: AIOKafkaAdminClient,
    telemetry_prefix: str,
    make_database: DatabaseFactory,
    tmp_path: Path,
) -> None:
    dsn = await migrated(await make_database("local"))
    end = datetime.fromtimestamp(int(time.time()) - 1, UTC)
    sent, expected = _fleet(end)
    await produce(settings.kafka_bootstrap, telemetry_prefix, sent)
    silent_since = int((end - timedelta(seconds=SECONDS - 5 + SILENT_S)).timestamp())
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"device_stale: {{after_s: {STALE_AFTER_S}}}\n")
    async with redis_namespace(settings.redis_url.get_secret_value()) as ns:
        reader = CacheReader.connect(
            cache_settings(
                settings,
                topic_prefix=telemetry_prefix,
                dsn=dsn,
                redis=ns,
                cache_rules_file=rules,
            ).redis_url,
            ns.prefix,
        )
        try:
            async with running_cache(
                cache_settings(
                    settings,
                    topic_prefix=telemetry_prefix,
                    dsn=dsn,
                    redis=ns,
                    cache_rules_file=rules,
                )
            ) as run:
                await run.wait_for_counts(applied=len(sent))

                async def stale_flagged() -> bool:
                    feed = await reader.anomalies("rough", 100)
                    return any(e.rule == "device_stale" for e in feed)

                await run.wait_until(stale_flagged, "the silent rack flagged stale")
                rough = await reader.anomalies("rough", 100)
                calm = await reader.anomalies("calm", 100)
                summary = await reader.summary("calm")
                raised = run.total("anomalies")
        finally:
            await reader.close()
        env = {**os.environ, "ESS_REDIS_URL": ns.url, "ESS_CACHE_KEY_PREFIX": ns.prefix}
        cli_feed = await essctl_cache(env, "anomalies", "--site", "rough", "--json")
        cli_agg = await essctl_cache(
            env,
            "agg",
            "--site",
            "calm",
            "--table",
            "rack",
            "--resolution",
            "1d",
            "--last",
            "1",
            "--measure",
            "soc",
            "--json",
        )
        cli_latest = await essctl_cache(env, "latest", "--site", "calm", "--json")
        cli_table = await essctl_cache(env, "anomalies", "--site", "rough")

    threshold = {
        (e.device, e.rule): (e.slot, e.value, e.limit) for e in rough if e.rule != "device_stale"
    }
    assert len(threshold) == len([e for e in rough if e.rule != "device_stale"])  # once each
    assert threshold.keys() == expected.keys()
    for key, (slot, value, limit) in expected.items():
        got_slot, got_value, got_limit = threshold[key]
        assert (got_slot, got_limit) == (slot, limit), key
        assert abs(got_value - value) < 1e-9, key
    stale = [e for e in rough if e.rule == "device_stale"]
    assert [(e.device, e.slot, e.limit) for e in stale] == [
        ("rough/bank1/rack7", silent_since, float(STALE_AFTER_S))
    ]
    assert stale[0].value > SILENT_S
    assert calm == []
    assert raised == len(rough)

    assert summary is not None
    assert summary["devices"] == 4
    assert summary["stale"] == []
    assert summary["pcs_power_w"] == 250_000.0
    assert summary["hottest_module"] == {"device": "calm/bank1/rack3", "module_t_max_c": 31.3}
    assert summary["rack_soc_pct"]["n"] == 3

    # `essctl cache` shows the same, as JSON for programs and as a table for people.
    assert [(e["device"], e["rule"]) for e in cli_feed["anomalies"]] == [
        (e.device, e.rule) for e in rough
    ]
    [day] = cli_agg["buckets"]
    assert day["measures"]["soc"]["count"] == 3 * SECONDS
    assert cli_agg["series"] == "site:calm:rack"
    assert {d["device"] for d in cli_latest["devices"]} == {
        "calm/bank1/rack1",
        "calm/bank1/rack2",
        "calm/bank1/rack3",
        "calm/pcs1",
    }
    assert "rough/bank1/rack6" in cli_table["text"]
    assert "soc_jump" in cli_table["text"]
