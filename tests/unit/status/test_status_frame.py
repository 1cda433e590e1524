"""`essctl status` frames from canned /metrics texts: rates, loss severity, lines."""

from __future__ import annotations

from ess_status.frame import build_frame, plain_lines, severity

SINK_0 = """# TYPE ess_sink_rows_written_total counter
ess_sink_rows_written_total{cluster="local",table="rack"} 100
# TYPE ess_sink_lag_messages gauge
ess_sink_lag_messages{cluster="local",table="rack",partition="0"} 7
ess_sink_lag_messages{cluster="local",table="rack",partition="1"} 3
"""
SINK_1 = SINK_0.replace("} 100", "} 150")
LOSS = (
    'ess_gapdetector_loss_ratio{cluster="local",site="%s",table="rack",period="minute",kind="%s"}'
)
GAP = f"""# TYPE ess_gapdetector_loss_ratio gauge
{LOSS % ("all", "total")} 0.03
{LOSS % ("s1", "total")} 0.06
{LOSS % ("s1", "sink")} 0.06
"""
LINKS = {"prometheus": "http://127.0.0.1:19090"}


def test_rates_gauges_and_loss_severity() -> None:
    frame = build_frame(
        {"sink-local": SINK_1, "gapdetector": GAP, "cache": None},
        {"sink-local": SINK_0, "gapdetector": GAP, "cache": None},
        dt=5.0,
        links=LINKS,
    )
    assert frame["rows_per_s"] == {"local": 10.0}
    assert frame["lag"] == {"local": 10.0}
    assert frame["services"] == {"sink-local": True, "gapdetector": True, "cache": False}
    assert [(r["site"], r["severity"]) for r in frame["loss"]] == [
        ("all", "warning"),
        ("s1", "critical"),
    ]
    lines = plain_lines(frame)
    assert "cache DOWN" in lines[0]
    assert any(line.startswith("local: rows/s 10.0, lag 10") for line in lines)
    assert lines[-1] == "prometheus: http://127.0.0.1:19090"


def test_first_frame_has_no_rates_and_bounds_are_not_above() -> None:
    frame = build_frame({"sink-local": SINK_0}, None, dt=0.0, links={})
    assert frame["rows_per_s"] == {"local": 0.0}
    assert (severity(0.02), severity(0.05), severity(0.0501)) == ("ok", "warning", "critical")
