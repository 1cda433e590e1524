"""Grafana dashboards as code (grafana-foundation-sdk); `python -m ess_dashboards` exports them."""
