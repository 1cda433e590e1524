"""Status frames from canned /metrics texts: rates per site and table, freshness
quantiles over the interval, restarts, loss severity, and how they are drawn."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from ess_status.frame import build_frame, severity
from ess_status.histogram import quantile
from ess_status.render import plain_lines, render

COLLECTOR_0 = """# TYPE ess_collector_readings_total counter
ess_collector_readings_total{site="site1",table="rack"} 100
ess_collector_readings_total{site="site1",table="bank"} 10
ess_collector_readings_total{site="site2",table="rack"} 50
# TYPE ess_collector_device_up gauge
ess_collector_device_up{site="site1",device="site1/bank1"} 1
ess_collector_device_up{site="site2",device="site2/bank1"} 0
ess_collector_device_up{site="site2",device="site2/pcs1"} 0
"""
COLLECTOR_1 = COLLECTOR_0.replace("} 100", "} 140").replace("} 50", "} 70")


def _freshness(cluster: str, counts: tuple[int, int, int, int]) -> str:
    """Cumulative buckets le=1, 2, 5, +Inf."""
    lines = ["# TYPE ess_sink_freshness_seconds histogram"]
    for le, n in zip(("1.0", "2.0", "5.0", "+Inf"), counts, strict=True):
        lines.append(
            f'ess_sink_freshness_seconds_bucket{{cluster="{cluster}",table="rack",le="{le}"}} {n}'
        )
    lines.append(
        f'ess_sink_freshness_seconds_count{{cluster="{cluster}",table="rack"}} {counts[-1]}'
    )
    return "\n".join(lines) + "\n"


SINK_0 = """# TYPE ess_sink_rows_written_total counter
ess_sink_rows_written_total{cluster="local",table="rack"} 300
# TYPE ess_sink_lag_messages gauge
ess_sink_lag_messages{cluster="local",table="rack",partition="0"} 7
ess_sink_lag_messages{cluster="local",table="rack",partition="1"} 3
""" + _freshness("local", (1000, 1000, 1000, 1000))
# in the interval: 100 rows, 50 fresher than 1 s, 48 more within 2 s, 2 within 5 s
SINK_1 = SINK_0.replace("} 300", "} 350").replace(
    _freshness("local", (1000, 1000, 1000, 1000)), _freshness("local", (1050, 1098, 1100, 1100))
)
LOSS = (
    'ess_gapdetector_loss_ratio{cluster="local",site="%s",table="rack",period="minute",kind="%s"}'
)
GAP = f"""# TYPE ess_gapdetector_loss_ratio gauge
{LOSS % ("all", "total")} 0.03
{LOSS % ("s1", "total")} 0.06
{LOSS % ("s1", "sink")} 0.06
"""
ARCHIVE = """# TYPE ess_archive_holding gauge
ess_archive_holding 1
# TYPE ess_archive_staged_rows gauge
ess_archive_staged_rows 1200
"""
RUN = """# TYPE ess_run_service_restarts_total counter
ess_run_service_restarts_total{service="sink-local"} 2
ess_run_service_restarts_total{service="cache"} 0
"""
LINKS = {"prometheus": "http://127.0.0.1:19090"}


def _frame() -> dict[str, Any]:
    before = {
        "collector": COLLECTOR_0,
        "sink-local": SINK_0,
        "gapdetector": GAP,
        "archive": ARCHIVE,
        "run": RUN,
    }
    after = {**before, "collector": COLLECTOR_1, "sink-local": SINK_1, "cache": None}
    return build_frame(after, before, dt=5.0, links=LINKS)


def test_rates_per_site_and_table_devices_down_and_lag() -> None:
    frame = _frame()
    assert frame["readings"] == [
        {"site": "site1", "table": "bank", "per_s": 0.0, "devices_down": 0},
        {"site": "site1", "table": "rack", "per_s": 8.0, "devices_down": 0},
        {"site": "site2", "table": "rack", "per_s": 4.0, "devices_down": 2},
    ]
    [local] = frame["clusters"]
    assert (local["rows_per_s"], local["lag"]) == (10.0, 10.0)


def test_freshness_quantiles_are_over_the_interval_not_the_uptime() -> None:
    [local] = _frame()["clusters"]
    # the 1,000 rows before the interval were all fresher than 1 s; they do not count
    assert local["freshness_p50_s"] == 1.0
    assert local["freshness_p99_s"] == 2.0 + 3.0 * (99 - 98) / 2  # inside the (2, 5] bucket


def test_restarts_come_from_the_supervisor_and_unknown_without_it() -> None:
    services = {s["name"]: s for s in _frame()["services"]}
    assert "run" not in services
    assert services["sink-local"]["restarts"] == 2
    assert services["cache"] == {"name": "cache", "up": False, "metrics": False, "restarts": 0}
    alone = build_frame({"sink-local": SINK_0}, None, 0.0, {})
    assert alone["services"] == [
        {"name": "sink-local", "up": True, "metrics": True, "restarts": None}
    ]


def test_the_supervisor_knows_a_process_runs_even_when_its_metrics_do_not_answer() -> None:
    run = RUN + '# TYPE ess_run_service_up gauge\ness_run_service_up{service="cache"} 1\n'
    frame = build_frame({"cache": None, "run": run}, None, 0.0, {})
    assert frame["services"] == [{"name": "cache", "up": True, "metrics": False, "restarts": 0}]
    assert plain_lines(frame)[0] == "services: cache up, no /metrics (restarts 0)"


def test_loss_worst_first_with_the_alert_bounds() -> None:
    loss = _frame()["loss"]
    assert [(r["site"], r["severity"]) for r in loss] == [
        ("s1", "critical"),
        ("all", "warning"),
    ]
    assert (severity(0.02), severity(0.05), severity(0.0501)) == ("ok", "warning", "critical")


def test_first_frame_has_no_rates() -> None:
    frame = build_frame({"sink-local": SINK_0}, None, dt=0.0, links={})
    assert frame["clusters"][0]["rows_per_s"] == 0.0


def test_a_restarted_service_counts_from_zero() -> None:
    frame = build_frame({"sink-local": SINK_0}, {"sink-local": SINK_1}, dt=5.0, links={})
    assert frame["clusters"][0]["rows_per_s"] == 60.0  # 300 since its restart, not -50


def test_plain_lines_and_the_rich_screen_say_the_same() -> None:
    frame = _frame()
    lines = plain_lines(frame)
    assert lines[0].startswith("services: archive up, cache DOWN (restarts 0), collector up")
    assert "readings/s site2: bank 0.0, rack 4.0; devices down 2" in lines
    assert any(
        line.startswith("local: rows/s 10.0, lag 10, freshness p50 1.00s p99 3.50s")
        for line in lines
    )
    assert "loss local/s1/rack minute: 6.00 % critical" in lines
    assert "archive rows/s 0.0, staged 1,200 HOLDING (object store away)" in lines
    assert lines[-1] == "prometheus: http://127.0.0.1:19090"
    console = Console(record=True, width=120, color_system="truecolor")
    console.print(render(frame, ["21:00:00 restarted sink-local"]))
    text = console.export_text()
    assert "readings/s per site" in text
    assert "site2" in text
    assert "6.00 %" in text
    assert "restarted sink-local" in text


def test_quantile_interpolates_like_prometheus() -> None:
    buckets = {1.0: 50.0, 2.0: 98.0, 5.0: 100.0, float("inf"): 100.0}
    assert quantile(0.5, buckets) == 1.0
    assert quantile(0.25, buckets) == 0.5
    assert quantile(0.99, buckets) == 2.0 + 3.0 * (99 - 98) / 2
    assert quantile(0.5, {1.0: 0.0, float("inf"): 0.0}) is None
    assert quantile(0.99, {1.0: 1.0, float("inf"): 10.0}) == 1.0  # in +Inf: the highest bound
