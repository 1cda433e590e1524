"""The sink: Kafka telemetry topics into one TimescaleDB cluster, idempotently."""
