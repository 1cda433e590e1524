"""The cache: hot aggregates, latest readings and an anomaly feed in Redis, exact under replays."""
