"""The gap detector: loss rates per cluster, site, table and device; replay and sync requests."""
