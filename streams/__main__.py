"""``python -m streams``: the same as ``storee streams``."""

from __future__ import annotations

import argparse
import logging
import sys

from streams import commands


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m streams")
    commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["streams", *sys.argv[1:]])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
