"""Fuzzing the running gateway from its own OpenAPI document (schemathesis): no input makes it answer 5xx.

Both valid (positive) and invalid (negative) requests are generated for every operation, a bounded
number each, against a real uvicorn process on the real broker and MongoDB-wire server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import zlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from pymongo import AsyncMongoClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from gateway.accounts import AccountStore, NewAccount
from ops.gateway_server import served
from schemas.records import TaskType, Tier
from tests.gateway.environment import gateway_env
from tests.gateway.factories import story_doc, task_doc

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXAMPLES = 30
# A pool of every kind, so every documented request body (image uploads too) is generated.
POOLS = {
    "default": frozenset({TaskType.TEXT_TO_VIDEO}),
    "i2v": frozenset({TaskType.IMAGE_TO_VIDEO}),
    "voice": frozenset({TaskType.TEXT_TO_AUDIO}),
}


def create_account(settings) -> NewAccount:
    async def create() -> NewAccount:
        client: AsyncMongoClient = AsyncMongoClient(str(settings.mongodb_url))
        try:
            return await AccountStore(client[settings.mongodb_database]).create(Tier.PREMIUM)
        finally:
            await client.close()

    return asyncio.run(create())


def random_flip(case: schemathesis.Case) -> bool:
    return zlib.crc32(repr(case.path_parameters).encode()) % 2 == 0


def fuzzer(operation: Any, mode: GenerationMode, url: str, auth: dict[str, str]) -> Callable[[], None]:
    """A hypothesis test that sends ``EXAMPLES`` generated requests for one operation and mode."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        phases=[Phase.generate],
        database=None,
        derandomize=True,  # the same requests every run: a failure here is a finding, not bad luck
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        if mode == GenerationMode.POSITIVE and case.path_parameters and random_flip(case):
            # Half the valid cases name the stored story and task, to reach past the 404s.
            for name in case.path_parameters:
                case.path_parameters[name] = "fuzz" if name == "story_id" else "fuzz:0"
        case.call_and_validate(base_url=url, headers=auth, checks=[not_a_server_error], timeout=30)

    return run


def test_fuzzing_from_the_openapi_document_finds_no_server_error(settings, catalog, mongo_db):
    # The story's event stream would stay open while the story runs: end each one within half a second.
    settings = dataclasses.replace(settings, pool_capabilities=POOLS, sse_max_duration_s=0.5)
    account = create_account(settings)
    # Something for the read endpoints to find, so fuzzing reaches past the 404s.
    mongo_db.stories.insert_one(story_doc("fuzz", account.account_id))
    mongo_db.tasks.insert_one(task_doc("fuzz", account.account_id, 0))
    auth = {"Authorization": f"Bearer {account.api_key}"}
    with served(gateway_env(settings)) as url:
        document = httpx.get(f"{url}/openapi.json").json()
        schema = schemathesis.openapi.from_dict(document)
        failures: list[str] = []
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                run = fuzzer(operation, mode, url, auth)
                try:
                    run()
                except Unsatisfiable:
                    assert mode == GenerationMode.NEGATIVE  # an operation without inputs has no invalid ones
                except Exception as exc:  # collect every operation's failure, then report them together
                    failures.append(f"{operation.label} ({mode.value}): {exc}")
        assert not failures, "\n\n".join(failures)
        # The fuzzing reached the real work, not only the error paths.
        metrics = httpx.get(f"{url}/metrics").text
        for reached in (
            'route="/v1/stories",status="202"',
            'route="/v1/jobs",status="202"',
            'route="/v1/stories",status="422"',
            'route="/v1/stories/{story_id}",status="200"',
        ):
            assert reached in metrics, reached
