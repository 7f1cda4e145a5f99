"""``storee gateway`` (serve the HTTP gateway) and ``storee accounts create`` (print a new API key once)."""

from __future__ import annotations

import argparse
import asyncio

from pymongo import AsyncMongoClient

from gateway.accounts import AccountStore, NewAccount
from gateway.settings import GatewaySettings
from schemas.records import Tier


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("gateway", help="serve the HTTP submission gateway (uvicorn)")
    serve.add_argument("--host", help="interface to bind (default: HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: PORT, else 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default: WORKERS, else 1)")
    serve.set_defaults(handler=_serve)

    accounts = subparsers.add_parser("accounts", help="manage gateway accounts and API keys")
    actions = accounts.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create an account and print its API key (shown only once)")
    create.add_argument("--tier", required=True, choices=[t.value for t in Tier])
    create.add_argument("--name", help="a label for the account")
    create.set_defaults(handler=_create_account)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn  # the server is only needed here

    settings = GatewaySettings.from_env()  # fail fast on bad settings, before workers start
    uvicorn.run(
        "gateway.app:app_from_env",
        factory=True,
        host=args.host or settings.host,
        port=settings.port if args.port is None else args.port,
        workers=args.workers or settings.workers,
        log_level="info",
        access_log=False,  # request metrics cover it; a log line per request costs throughput
    )
    return 0


def _create_account(args: argparse.Namespace) -> int:
    settings = GatewaySettings.from_env()
    created = asyncio.run(_create(settings, Tier(args.tier), args.name))
    print(f"account_id: {created.account_id}")
    print(f"tier:       {created.tier.value}")
    print(f"api_key:    {created.api_key}")
    print("Store the key now: only its hash is kept, it cannot be shown again.")
    return 0


async def _create(settings: GatewaySettings, tier: Tier, name: str | None) -> NewAccount:
    client: AsyncMongoClient = AsyncMongoClient(str(settings.mongodb_url), serverSelectionTimeoutMS=5_000)
    try:
        return await AccountStore(client[settings.mongodb_database]).create(tier, name)
    finally:
        await client.close()
