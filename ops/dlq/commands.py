"""``storee dlq list|show|replay``: look at dead letters and put them back after a fix.

``list`` shows the newest ``--limit`` letters (100 by default, newest last) matching ``--topic`` (the
origin topic, with or without the prefix), ``--service``, ``--reason`` (a substring of the error) and
``--since``/``--until`` (ISO time or a duration back from now: 30m, 1h, 2d). A letter's id is
``<dlq partition>:<dlq offset>``; ``show ID`` prints its headers, its event when the bytes decode and
what it names. ``replay ID... | filters`` prints the plan and changes nothing; ``--execute`` puts each
letter back on its origin topic (same key, same bytes) and records a replay marker on the DLQ, so a
second replay of the same letter is refused unless ``--again`` (see :mod:`ops.dlq.plan`).

Exit status: 0 ok; 2 when ``replay`` refused a letter or selected none, or ``show`` found none; 1 on
errors.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console

from ops.dlq.exceptions import DlqError
from ops.dlq.letters import Letter, LetterId, replays_by_letter
from ops.dlq.plan import plan_replay
from ops.dlq.reader import DlqReader
from ops.dlq.replayer import execute
from ops.dlq.selection import LetterFilter, parse_when, select
from ops.dlq.table import letter_document, letter_row, list_table, plan_document, plan_table, replayed_rows
from ops.runtime.config import ConnectionSettings, Env
from ops.runtime.kafka import DurableProducer
from schemas.codec import Codec
from schemas.ids import now_ms
from schemas.topics import DLQ

EXIT_OK = 0
EXIT_REFUSED = 2
# Markers are timestamped by the replaying host's clock, letters by the failing service's: look a little
# before the oldest letter so a skewed clock does not hide a marker.
CLOCK_SLACK_MS = 5 * 60_000


def register(subparsers: argparse._SubParsersAction) -> None:
    dlq = subparsers.add_parser(
        "dlq", help="dead letters: list, show, replay after a fix (dry run unless --execute)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    actions = dlq.add_subparsers(dest="dlq_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="dead letters, newest last")
    _common(listing)
    _filters(listing)
    listing.set_defaults(handler=_list)
    show = actions.add_parser("show", help="one letter: headers, decoded event, what it names")
    _common(show)
    show.add_argument("id", help="the letter's id, <partition>:<offset> (from dlq list)")
    show.set_defaults(handler=_show)
    replay = actions.add_parser(
        "replay", help="put letters back on their origin topic (plan unless --execute)"
    )
    _common(replay)
    replay.add_argument("ids", nargs="*", metavar="ID", help="letter ids (or select with the filters)")
    _filters(replay)
    replay.add_argument("--execute", action="store_true", help="produce the replay (default: print the plan)")
    replay.add_argument("--again", action="store_true", help="replay letters that were replayed before")
    replay.set_defaults(handler=_replay)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (same data as the table)")
    parser.add_argument("--prefix", help="topic name prefix (default: TOPIC_PREFIX, else 'storee.')")
    parser.add_argument("--bootstrap-servers", help="Kafka to read (default: KAFKA_BOOTSTRAP_SERVERS)")


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", help="origin topic, with or without the prefix (tasks.requested)")
    parser.add_argument("--service", help="failing service, or its first part (streams, streams.batcher)")
    parser.add_argument("--reason", help="substring of the error class or message (case-insensitive)")
    parser.add_argument("--since", help="failed at or after: ISO time or a duration back (1h, 2d)")
    parser.add_argument("--until", help="failed at or before: ISO time or a duration back")
    parser.add_argument(
        "--limit", type=int, default=100, help="at most this many, newest (default: %(default)s)"
    )


def _setup(args: argparse.Namespace) -> tuple[ConnectionSettings, str, str]:
    connection = ConnectionSettings.from_env(Env())
    prefix = connection.topic_prefix if args.prefix is None else args.prefix
    return connection, prefix, args.bootstrap_servers or connection.kafka()


def letter_filter(args: argparse.Namespace, prefix: str, now: int) -> LetterFilter:
    topic = args.topic
    if topic is not None and not topic.startswith(prefix):
        topic = prefix + topic
    return LetterFilter(
        topic=topic,
        service=args.service,
        reason=args.reason,
        since_ms=None if args.since is None else parse_when(args.since, now, name="--since"),
        until_ms=None if args.until is None else parse_when(args.until, now, name="--until"),
    )


def _console() -> Console:
    # Piped into a log, rich would fold the table into 80 columns.
    return Console() if Console().is_terminal else Console(width=200)


def _print(doc: Any, as_json: bool, table: Any = None) -> None:
    if as_json:
        print(json.dumps(doc, indent=2))
    elif table is not None:
        _console().print(table)


def _list(args: argparse.Namespace) -> int:
    _, prefix, bootstrap = _setup(args)
    wanted = letter_filter(args, prefix, now_ms())
    reader = DlqReader(bootstrap, prefix + DLQ)
    try:
        letters, markers = reader.scan(_scan_from(wanted.since_ms))
    finally:
        reader.close()
    replays = replays_by_letter(markers)
    rows = [letter_row(x, replays.get(str(x.id), [])) for x in select(letters, wanted, args.limit)]
    _print({"topic": prefix + DLQ, "letters": rows}, args.json, list_table(rows, prefix + DLQ))
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    _, prefix, bootstrap = _setup(args)
    letter_id = LetterId.parse(args.id)
    reader = DlqReader(bootstrap, prefix + DLQ)
    try:
        (letter,) = reader.fetch([letter_id])
        _, markers = reader.scan(_scan_from(letter.record.timestamp_ms))
    finally:
        reader.close()
    doc = letter_document(letter, replays_by_letter(markers).get(str(letter_id), []), Codec())
    if args.json:
        _print(doc, True)
    else:
        _show_text(doc)
    return EXIT_OK


def _show_text(doc: dict[str, Any]) -> None:
    console = _console()
    console.print(f"[bold]{doc['id']}[/bold] {doc['failed_at']} {doc['service']} from {doc['origin']}")
    console.print(f"reason: {doc['reason']}")
    console.print(f"key: {doc['key']}  size: {doc['size']} bytes")
    for replay in doc["replays"]:
        console.print(f"replayed at {replay['at']} to {replay['to']} (marker {replay['marker']})")
    console.print("headers:")
    for header in doc["headers"]:
        console.print(f"  {header['name']}: {header['value']}", markup=False)
    if doc["names"]:
        console.print("names: " + ", ".join(f"{k}={v}" for k, v in doc["names"].items()), markup=False)
    if doc["event"] is not None:
        console.print("event:")
        console.print_json(json.dumps(doc["event"]))
    else:
        console.print(f"not an event: {doc['decode_error']}", markup=False)
        console.print(f"utf-8: {doc['preview']['utf8']!r}", markup=False)
        console.print(f"hex: {doc['preview']['hex']}", markup=False)


def _replay(args: argparse.Namespace) -> int:
    _, prefix, bootstrap = _setup(args)
    now = now_ms()
    wanted = letter_filter(args, prefix, now)
    if not args.ids and wanted.empty:
        raise DlqError("name the letters to replay: ids, or --topic/--service/--reason/--since/--until")
    reader = DlqReader(bootstrap, prefix + DLQ)
    try:
        letters: list[Letter]
        if args.ids:
            letters = [x for x in reader.fetch(LetterId.parse(i) for i in args.ids) if wanted.matches(x)]
            oldest = min((x.record.timestamp_ms for x in letters), default=now)
            _, markers = reader.scan(_scan_from(oldest))
        else:
            found, markers = reader.scan(_scan_from(wanted.since_ms))
            letters = select(found, wanted, args.limit)
        plan = plan_replay(
            letters, replays_by_letter(markers), again=args.again, existing_topics=reader.existing_topics()
        )
    finally:
        reader.close()
    doc = plan_document(plan, args.execute)
    if args.execute and plan.to_replay:
        producer = DurableProducer(bootstrap)
        try:
            doc["replayed"] = replayed_rows(execute(plan, producer, prefix + DLQ, now_ms))
        finally:
            producer.close()
    _print(doc, args.json, plan_table(doc))
    if not args.json and "replayed" in doc:
        for row in doc["replayed"]:
            _console().print(f"replayed {row['id']} -> {row['to']} (marker {row['marker']})")
    return EXIT_OK if plan.to_replay and not plan.refused else EXIT_REFUSED


def _scan_from(since_ms: int | None) -> int | None:
    return None if since_ms is None else since_ms - CLOCK_SLACK_MS
