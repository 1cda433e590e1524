"""ESS site simulator: a Modbus TCP gateway per site serving SunSpec and
vendor-style battery, PCS and meter devices whose values follow a seeded,
wall-clock-driven battery model."""
