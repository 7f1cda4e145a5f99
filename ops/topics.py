"""``storee topics ensure|list``: provision the topic catalog on a broker and report drift.

The work is :func:`ops.runtime.provisioning.ensure_topics`; this module is the command around it.
``storee topics ensure`` exits 0 when every topic matches (or was created or fixed), 2 when drift
remains, 1 on errors.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from rich.console import Console
from rich.table import Table

from ops.runtime.config import ConnectionSettings, Env, pool_names
from ops.runtime.kafka import KafkaUnavailable, admin_client
from ops.runtime.provisioning import describe_topics, ensure_topics
from ops.runtime.topic_plan import EXIT_DRIFT, FIX_CONFIG, FIX_PARTITIONS, drift_of
from schemas.topics import DEFAULT_POOL, TopicCatalog


@dataclass(frozen=True, slots=True)
class TopicSettings:
    """How to build the catalog, read from the environment (command-line flags override)."""

    pools: tuple[str, ...]
    replication_factor: int
    min_insync_replicas: int

    @classmethod
    def from_env(cls, env: Env | None = None) -> TopicSettings:
        env = env or Env()
        pools = pool_names(env)
        return cls(
            pools=pools or (DEFAULT_POOL,),
            replication_factor=env.int("TOPIC_REPLICATION_FACTOR", 1, minimum=1),
            min_insync_replicas=env.int("TOPIC_MIN_INSYNC_REPLICAS", 2, minimum=1),
        )


def register(subparsers: argparse._SubParsersAction) -> None:
    topics = subparsers.add_parser("topics", help="provision the topic catalog and report drift")
    actions = topics.add_subparsers(dest="action", metavar="ACTION", required=True)
    ensure = actions.add_parser(
        "ensure",
        help="create missing topics, report drift (exit 0: all match; 2: drift remains)",
        description="Create the catalog's missing topics and report drift without destroying data. "
        "Exit status: 0 when every topic matches (or was created or fixed), 2 when drift remains, "
        "1 on errors.",
    )
    _catalog_arguments(ensure)
    ensure.add_argument(FIX_PARTITIONS, action="store_true", help="add partitions where the catalog has more")
    ensure.add_argument(
        FIX_CONFIG,
        action="store_true",
        help="set retention.ms, cleanup.policy and min.insync.replicas to the catalog's values",
    )
    ensure.set_defaults(handler=_ensure)
    listing = actions.add_parser("list", help="print the catalog next to what the cluster has")
    _catalog_arguments(listing)
    listing.set_defaults(handler=_list)


def _catalog_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap-servers", help="Kafka to use (default: KAFKA_BOOTSTRAP_SERVERS, else the local stack)"
    )
    parser.add_argument("--prefix", help="topic name prefix (default: TOPIC_PREFIX, else 'storee.')")
    parser.add_argument(
        "--pool",
        action="append",
        dest="pools",
        metavar="NAME",
        help="a GPU pool; repeat for several (default: GPU_POOLS, else 'default')",
    )
    parser.add_argument("--replication-factor", type=int, help="default: TOPIC_REPLICATION_FACTOR, else 1")
    parser.add_argument(
        "--min-insync-replicas",
        type=int,
        help="clamped to the replication factor (default: TOPIC_MIN_INSYNC_REPLICAS, else 2)",
    )


def _setup(args: argparse.Namespace) -> tuple[AdminClient, TopicCatalog]:
    connection = ConnectionSettings.from_env()
    settings = TopicSettings.from_env()
    catalog = TopicCatalog.build(
        prefix=connection.topic_prefix if args.prefix is None else args.prefix,
        pools=args.pools or settings.pools,
        replication_factor=args.replication_factor or settings.replication_factor,
        min_insync_replicas=args.min_insync_replicas or settings.min_insync_replicas,
    )
    bootstrap = args.bootstrap_servers or connection.kafka()
    return admin_client(bootstrap), catalog


def _ensure(args: argparse.Namespace) -> int:
    admin, catalog = _setup(args)
    report = ensure_topics(admin, catalog, fix_partitions=args.fix_partitions, fix_config=args.fix_config)
    console = _console()
    table = Table("topic", "result", "detail")
    for name in report.created:
        table.add_row(name, "[green]created[/green]", "")
    for name in report.matched:
        table.add_row(name, "ok", "")
    for drift in report.fixed:
        table.add_row(
            drift.topic, "[green]fixed[/green]", f"{drift.setting}: {drift.actual} -> {drift.expected}"
        )
    for drift in report.drift:
        remedy = f"; {drift.fix} fixes it" if drift.fix else "; needs an operator"
        table.add_row(
            drift.topic,
            "[yellow]drift[/yellow]",
            f"{drift.setting}: cluster {drift.actual}, catalog {drift.expected}{remedy}",
        )
    console.print(table)
    if report.drift:
        console.print(f"[yellow]{len(report.drift)} drift item(s) remain[/yellow] (exit status {EXIT_DRIFT})")
    return report.exit_code


def _list(args: argparse.Namespace) -> int:
    admin, catalog = _setup(args)
    existing = describe_topics(admin, catalog.names)
    table = Table("topic", "key", "partitions", "rf", "retention", "cleanup", "min.isr", "status")
    table.columns[0].no_wrap = True
    for spec in catalog:
        topic = existing.get(spec.name)
        config = topic.config if topic else {}
        retention = config.get("retention.ms")
        status = "missing" if topic is None else ("[yellow]drift[/yellow]" if drift_of(spec, topic) else "ok")
        table.add_row(
            spec.name,
            spec.key,
            _cell(spec.partitions, topic.partitions if topic else None),
            _cell(spec.replication_factor, topic.replication_factor if topic else None),
            _cell(_duration(spec.retention_ms), _duration(int(retention)) if retention else None),
            _cell(spec.cleanup_policy, config.get("cleanup.policy")),
            _cell(spec.min_insync_replicas, config.get("min.insync.replicas")),
            status,
        )
    for name in _names_with_prefix(admin, catalog):
        table.add_row(name, "", "", "", "", "", "", "not in catalog")
    _console().print(table)
    return 0


def _console() -> Console:
    # Piped output (CI logs, tests) gets room for the whole table instead of rich's 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=160)


def _cell(expected: object, actual: object | None) -> str:
    """The catalog's value, or the cluster's highlighted where they differ."""
    if actual is None or str(actual) == str(expected):
        return str(expected)
    return f"[yellow]{actual}[/yellow] (catalog {expected})"


def _duration(ms: int) -> str:
    if ms < 0:
        return "forever"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _names_with_prefix(admin: AdminClient, catalog: TopicCatalog, timeout: float = 15.0) -> list[str]:
    """Cluster topics under the catalog's prefix that the catalog does not list."""
    if not catalog.prefix:
        return []
    try:
        names = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise KafkaUnavailable(f"cannot list topics: {exc.args[0]}") from exc
    return sorted(name for name in names if name.startswith(catalog.prefix) and name not in catalog.names)
