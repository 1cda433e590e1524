"""The collector: polls ESS devices over Modbus TCP once per second (read-only,
function codes 1-4) and publishes one reading per device per slot to Kafka,
through an on-disk spool that rides out Kafka outages."""
