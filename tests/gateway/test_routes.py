"""The route table is the one list of operations: the app serves it, the document describes it, no more."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter

from starlette.routing import Route
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.openapi import openapi_document
from gateway.routes.table import OPERATIONS, resolve
from schemas.records import TaskType
from tests.gateway.test_openapi import BASE  # settings naming no server: apps here are never started

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def test_each_operation_is_listed_once():
    counts = Counter((operation.method, operation.path) for operation in OPERATIONS)
    assert [key for key, count in counts.items() if count > 1] == []


def test_the_app_serves_exactly_the_table_in_its_order():
    routes = [route for route in create_app(BASE).routes if isinstance(route, Route)]
    served = [(route.path, set(route.methods or ()) & METHODS, route.endpoint) for route in routes]
    listed = [(operation.path, {operation.method}, operation.handler) for operation in OPERATIONS]
    assert served == listed


def test_the_document_describes_exactly_the_table():
    paths = openapi_document(BASE)["paths"]
    documented = {(method.upper(), path) for path, operations in paths.items() for method in operations}
    assert documented == {(operation.method, operation.path) for operation in OPERATIONS}


def test_every_path_parameter_is_documented_and_every_documented_one_is_in_the_path():
    for operation in OPERATIONS:
        in_path = set(re.findall(r"{(\w+)}", operation.path))
        parameters = [resolve(parameter, BASE) for parameter in operation.parameters]
        documented = {parameter["name"] for parameter in parameters if parameter["in"] == "path"}
        assert documented == in_path, operation.path


def test_openapi_json_serves_the_document_for_the_apps_settings():
    settings = dataclasses.replace(
        BASE,
        pool_capabilities={"default": frozenset({TaskType.TEXT_TO_VIDEO}), "i2v": frozenset(TaskType)},
    )
    with_image = TestClient(create_app(settings)).get("/openapi.json")
    assert with_image.status_code == 200
    assert with_image.json() == openapi_document(settings)
    assert "multipart/form-data" in with_image.json()["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]
    assert TestClient(create_app(BASE)).get("/openapi.json").json() == openapi_document(BASE)


def test_each_document_is_a_fresh_value():
    first = openapi_document(BASE)
    first["paths"]["/v1/stories"]["post"]["responses"]["202"]["description"] = "changed"
    first["components"]["schemas"]["Error"]["required"].append("changed")
    assert openapi_document(BASE) != first
