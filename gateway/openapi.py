"""The OpenAPI 3.1 document of the gateway: the route table's operations, plus the shared components.

The paths come from ``gateway.routes.table`` (the same operations the app serves), the schemas from
``gateway.openapi_schemas`` (the same limits the validation enforces); the schemathesis test in
``tests/gateway`` fuzzes the running app from this document, so a rule that drifts shows up there.
"""

from __future__ import annotations

import copy
from typing import Any

from gateway.openapi_schemas import ACCEPTED, ERROR, generation_params
from gateway.routes.table import OPERATIONS, Operation, resolve
from gateway.settings import GatewaySettings

SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def openapi_document(settings: GatewaySettings) -> dict[str, Any]:
    """The document for ``settings`` (pools, limits); a fresh value on every call."""
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method.lower()] = _operation(operation, settings)
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Storee gateway",
            "version": "1.0.0",
            "description": "Submit stories and prompts for AI video and audio generation and follow them.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": SECURITY_SCHEMES,
            "schemas": {
                "GenerationParams": generation_params(settings),
                "Accepted": ACCEPTED,
                "Error": ERROR,
            },
        },
    }
    return copy.deepcopy(document)  # the table's values are shared; what callers get is theirs


def _operation(operation: Operation, settings: GatewaySettings) -> dict[str, Any]:
    entry: dict[str, Any] = {"summary": operation.summary}
    if operation.secured:
        entry["security"] = SECURITY
    if operation.parameters:
        entry["parameters"] = [resolve(parameter, settings) for parameter in operation.parameters]
    if operation.request_body is not None:
        entry["requestBody"] = resolve(operation.request_body, settings)
    entry["responses"] = operation.responses
    return entry
