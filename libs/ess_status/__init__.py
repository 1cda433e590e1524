"""Pipeline status for a person: one frame from the /metrics texts, live or as lines."""
