"""The ``storee`` command line.

Each command group lives in its own module and registers itself with :func:`register`-style hooks,
so this file only wires them together. Errors Storee raises on purpose are printed as one clear line
(exit status 1), never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from ops.exceptions import StoreeError

# Modules that add subcommands: each exposes ``register(subparsers)``. A module that a later issue
# has not written yet is simply absent from this list.
COMMAND_MODULES: tuple[str, ...] = (
    "ops.stack.commands",
    "ops.topics",
    "ops.schema_history",
    "ops.up",
    "ops.client_commands",
    "gateway.commands",
    "streams.commands",
    "gpu_consumers.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="storee", description="Storee: Kafka-native AI video generation.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real import error inside the module must not be hidden
                raise
            continue  # a command group that has not been written yet
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:  # one line per HTTP request drowns the demo's progress bars
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.handler(args) or 0)
    except StoreeError as exc:
        print(f"storee: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
