"""`essctl`: the operators' command line (schema, and later replay, loss, sync, index)."""
