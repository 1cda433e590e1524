"""The local stack: real Kafka, two TimescaleDB servers and Redis on loopback, no Docker."""
