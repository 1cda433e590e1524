"""The two TimescaleDB clusters every reading is stored in: on-premises and cloud."""

from __future__ import annotations

from typing import Literal

Cluster = Literal["local", "cloud"]
CLUSTERS: tuple[Cluster, ...] = ("local", "cloud")
