"""``storee schemas snapshot``: record the current schemas in ``schemas/history`` before a release.

Readers decode a message only if they know its writer schema, so every schema that may have written
data must stay in the history. Run this whenever a schema changes (a test fails until it is done);
it only adds files, never rewrites or removes one. Also runs as ``python -m ops.schema_history``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import schemas.history
from schemas.registry import SchemaRegistry, snapshot_files

HISTORY_DIR = Path(schemas.history.__file__).parent


def snapshot(history_dir: Path = HISTORY_DIR) -> list[Path]:
    """Write every current schema missing from the history; return the files written."""
    written = []
    for name, text in snapshot_files(SchemaRegistry.load()).items():
        path = history_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("schemas", help="the Avro event schemas")
    _add_actions(group)


def _add_actions(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    snap = actions.add_parser(
        "snapshot", help="add the current schemas to schemas/history (before a release)"
    )
    snap.set_defaults(handler=_snapshot)


def _snapshot(args: argparse.Namespace) -> int:
    written = snapshot()
    for path in written:
        print(f"added {path}")
    if not written:
        print("schemas/history already holds every current schema")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.schema_history")
    _add_actions(parser)
    args = parser.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
