"""Shared library of the ESS services: settings, data model, Kafka and service plumbing."""
