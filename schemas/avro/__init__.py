"""The current Avro schemas: one ``.avsc`` per event, shared named types in ``common.avsc``."""
