"""``storee stack up|down|status``: the local Kafka and MongoDB-wire servers."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from ops.stack import LocalStack, StackSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    stack = subparsers.add_parser("stack", help="run the local Kafka and MongoDB-wire servers")
    actions = stack.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start what is not running (harmless to repeat)")
    up.add_argument(
        "--brokers",
        type=int,
        choices=(1, 3),
        default=None,
        help="Kafka brokers: 1 (default) or 3 (replication factor 3, min.insync.replicas 2)",
    )
    up.set_defaults(handler=_up)
    down = actions.add_parser("down", help="stop what 'up' started")
    down.set_defaults(handler=_down)
    status = actions.add_parser("status", help="show what runs where")
    status.set_defaults(handler=_status)
    env = actions.add_parser("env", help="print shell exports pointing clients at the stack")
    env.set_defaults(handler=_env)


def _stack(args: argparse.Namespace) -> LocalStack:
    return LocalStack(StackSettings.from_env(), brokers=getattr(args, "brokers", None))


def _up(args: argparse.Namespace) -> int:
    stack = _stack(args)
    console = Console()
    with console.status("starting the local stack (the first start fetches Kafka and builds FerretDB)"):
        started = stack.up()
    console.print(
        f"[green]stack is up[/green] ({'started ' + ', '.join(started) if started else 'already running'})"
    )
    _print_table(console, stack)
    return 0


def _down(args: argparse.Namespace) -> int:
    stopped = _stack(args).down()
    Console().print(f"stopped {stopped} process{'es' if stopped != 1 else ''}")
    return 0


def _status(args: argparse.Namespace) -> int:
    stack = _stack(args)
    _print_table(Console(), stack)
    return 0 if all(c.state != "stopped" for c in stack.status()) else 3


def _env(args: argparse.Namespace) -> int:
    stack = _stack(args)
    print(f"export KAFKA_BOOTSTRAP_SERVERS={stack.bootstrap_servers}")
    print(f"export MONGODB_URL={stack.mongodb_url}")
    return 0


def _print_table(console: Console, stack: LocalStack) -> None:
    table = Table(box=None, show_header=True, pad_edge=False)
    for column in ("component", "listens on", "state", "pid"):
        table.add_column(column, no_wrap=True)
    for component in stack.status():
        table.add_row(component.name, component.address, component.state, " ".join(map(str, component.pids)))
    console.print(table)
    console.print(f"run directory (data and logs): {stack.settings.run_dir}", soft_wrap=True)
