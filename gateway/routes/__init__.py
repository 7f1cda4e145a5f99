"""The HTTP handlers, one module per kind of endpoint; ``table`` lists every operation once.

``submit`` (the writes), ``reads`` (a story, a task, the caller's stories), ``results`` (files and ZIPs)
and ``system`` (health, readiness, metrics, schemas, the OpenAPI document). Handlers authenticate,
parse, call the gateway's other modules and answer; errors they raise become responses in
``gateway.error_responses``.
"""
