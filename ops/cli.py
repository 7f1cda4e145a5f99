"""The ``storee`` command line.

Each command group lives in its own module and exposes ``register(subparsers)``, so this file only wires
them together. Before a command runs, the servers it will talk to are settled once: when
``KAFKA_BOOTSTRAP_SERVERS`` or ``MONGODB_URL`` is unset, it is set to the local stack's address, so
the services (which never import the stack) and the children they start all see the same servers.
Commands that manage the local stack themselves (``stack``, ``up``, ``demo``) are left to do so.
Errors Storee raises on purpose are printed as one clear line (exit status 1), never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import MutableMapping, Sequence

from gateway import commands as gateway_commands
from gpu_consumers import commands as gpu_commands
from ops import client_commands, schema_history, topics, up
from ops.dlq import commands as dlq_commands
from ops.lag import commands as lag_commands
from ops.replay import commands as replay_commands
from ops.runtime.entry import command_parser, configure_logging, dispatch
from ops.stack import commands as stack_commands
from ops.stack import local_bootstrap_servers, local_mongodb_url
from ops.view import commands as view_commands
from streams import commands as streams_commands

REGISTERS = (
    stack_commands.register,
    topics.register,
    schema_history.register,
    up.register,
    client_commands.register,
    gateway_commands.register,
    streams_commands.register,
    gpu_commands.register,
    lag_commands.register,
    dlq_commands.register,
    replay_commands.register,
    view_commands.register,
)
# These start, stop or read the local stack themselves: an address filled in for them would make the
# stack take its own servers for external ones.
MANAGE_THE_STACK = frozenset({"stack", "up", "demo"})


def resolve_servers(environ: MutableMapping[str, str]) -> None:
    """Fill unset ``KAFKA_BOOTSTRAP_SERVERS`` / ``MONGODB_URL`` with the local stack's addresses."""
    if not environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip():
        environ["KAFKA_BOOTSTRAP_SERVERS"] = local_bootstrap_servers()
    if not environ.get("MONGODB_URL", "").strip():
        environ["MONGODB_URL"] = local_mongodb_url()


def build_parser() -> argparse.ArgumentParser:
    return command_parser("storee", REGISTERS, "Storee: Kafka-native AI video generation.")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(verbose=args.verbose)
    if args.command not in MANAGE_THE_STACK:
        resolve_servers(os.environ)
    return dispatch("storee", args)


if __name__ == "__main__":
    sys.exit(main())
