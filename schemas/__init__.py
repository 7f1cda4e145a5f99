"""The event contract: Avro schemas, typed events, the codec, the topic catalog and dead letters.

Import from the modules: ``schemas.events`` (event classes), ``schemas.records`` (enums and shared
records), ``schemas.codec`` (``Codec``), ``schemas.registry`` (``list_schemas`` for ``GET /v1/schemas``),
``schemas.ids``, ``schemas.topics`` (``TopicCatalog``) and ``schemas.dlq``. This package does no I/O
beyond reading its own ``.avsc`` files.
"""
