"""How a process starts: logging, the command line of one service, errors as one clear line.

``storee`` (:mod:`ops.cli`) and each service's ``python -m`` entry point use these, so a service runs
the same way with or without the tooling above it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from ops.runtime.exceptions import StoreeError

Register = Callable[[argparse._SubParsersAction], None]


def configure_logging(*, verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:  # one line per HTTP request drowns the demo's progress bars
        logging.getLogger("httpx").setLevel(logging.WARNING)


def command_parser(
    prog: str, registers: Sequence[Register], description: str | None = None
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in registers:
        register(subparsers)
    return parser


def dispatch(prog: str, args: argparse.Namespace) -> int:
    """Run the parsed command; a :class:`StoreeError` is one line on stderr and exit status 1."""
    try:
        return int(args.handler(args) or 0)
    except StoreeError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def service_main(prog: str, register: Register, argv: Sequence[str]) -> int:
    """A service's ``python -m`` entry point: its own commands only, settings from the environment."""
    args = command_parser(prog, [register]).parse_args(argv)
    configure_logging(verbose=args.verbose)
    return dispatch(prog, args)
