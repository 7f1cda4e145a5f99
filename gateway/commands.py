"""``storee gateway`` (serve the HTTP gateway) and ``storee accounts``: create an account (its API key and
webhook secret printed once), rotate its webhook secret, show its webhook signing without the secrets."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from pymongo import AsyncMongoClient

from gateway.accounts import AccountStore, SecretLife
from gateway.settings import GatewaySettings
from schemas.records import Tier
from schemas.webhook_secrets import DEFAULT_GRACE_S

T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser("gateway", help="serve the HTTP submission gateway (uvicorn)")
    serve.add_argument("--host", help="interface to bind (default: HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: PORT, else 8000)")
    serve.add_argument("--workers", type=int, help="worker processes (default: WORKERS, else 1)")
    serve.set_defaults(handler=_serve)

    accounts = subparsers.add_parser("accounts", help="manage gateway accounts, API keys and webhook secrets")
    actions = accounts.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create", help="create an account; print its API key and webhook secret (shown only once)"
    )
    create.add_argument("--tier", required=True, choices=[t.value for t in Tier])
    create.add_argument("--name", help="a label for the account")
    create.set_defaults(handler=_create_account)
    rotate = actions.add_parser(
        "rotate-webhook-secret",
        help="add a new webhook secret (printed once); the old ones keep signing beside it for --grace",
    )
    rotate.add_argument("account_id", metavar="ACCOUNT_ID")
    rotate.add_argument(
        "--grace",
        type=_seconds,
        default=DEFAULT_GRACE_S,
        metavar="SECONDS",
        help=f"how long the old secrets still sign (default {DEFAULT_GRACE_S}: 24 h; 0 ends them now)",
    )
    rotate.set_defaults(handler=_rotate_secret)
    signing = actions.add_parser(
        "webhook-signing", help="show how many webhook secrets sign for an account and when each retires"
    )
    signing.add_argument("account_id", metavar="ACCOUNT_ID")
    signing.set_defaults(handler=_show_signing)


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
    created = _with_store(lambda store: store.create(Tier(args.tier), args.name))
    print(f"account_id:     {created.account_id}")
    print(f"tier:           {created.tier.value}")
    print(f"api_key:        {created.api_key}")
    print(f"webhook_secret: {created.webhook_secret}")
    print("Store both now: the key's hash alone is kept, and neither can be shown again.")
    print("The webhook secret verifies the signature (webhook-signature) of this account's webhooks.")
    return 0


def _rotate_secret(args: argparse.Namespace) -> int:
    rotated = _with_store(lambda store: store.rotate_webhook_secret(args.account_id, grace_s=args.grace))
    print(f"account_id:     {rotated.account_id}")
    print(f"webhook_secret: {rotated.webhook_secret}")
    print("Store it now: it cannot be shown again. Webhooks are signed with every secret below:")
    _print_lives(rotated.live)
    return 0


def _show_signing(args: argparse.Namespace) -> int:
    lives = _with_store(lambda store: store.webhook_signing(args.account_id))  # no account: exit 1
    print(f"account_id: {args.account_id}")
    if not lives:
        print("no live webhook secret: its webhooks cannot be signed (storee accounts rotate-webhook-secret)")
        return 1
    print(f"{len(lives)} live webhook secret{'s' if len(lives) > 1 else ''} (newest first):")
    _print_lives(lives)
    return 0


def _print_lives(lives: tuple[SecretLife, ...]) -> None:
    for index, life in enumerate(lives, start=1):
        ends = "no end" if life.retires_at is None else f"retires {_when(life.retires_at)}"
        print(f"  {index}. created {_when(life.created_at)}, {ends}")


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not 0 <= seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {value!r}")
    return seconds


def _with_store(action: Callable[[AccountStore], Awaitable[T]]) -> T:
    """Run ``action`` on an account store over a MongoDB client opened for it alone."""
    settings = GatewaySettings.from_env()

    async def run() -> T:
        client: AsyncMongoClient = AsyncMongoClient(str(settings.mongodb_url), serverSelectionTimeoutMS=5_000)
        try:
            return await action(AccountStore(client[settings.mongodb_database]))
        finally:
            await client.close()

    return asyncio.run(run())
