"""``storee topics ensure|list``: provision the topic catalog on a broker and report drift.

``ops.topic_plan.plan`` compares the catalog with what the cluster has; ``ensure_topics`` creates what is
missing and, only when asked, applies the two non-destructive fixes (more partitions, topic configs).
Nothing is ever deleted or recreated: other drift (replication factor, more partitions than the catalog)
is reported for an operator. ``storee topics ensure`` exits 0 when every topic matches (or was created
or fixed), 2 when drift remains, 1 on errors.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)
from rich.console import Console
from rich.table import Table

from ops.config import ConnectionSettings, Env, pool_names
from ops.exceptions import StoreeError
from ops.kafka import KafkaUnavailable, admin_client
from ops.topic_plan import (
    EXIT_DRIFT,
    FIX_CONFIG,
    FIX_PARTITIONS,
    EnsureReport,
    ExistingTopic,
    drift_of,
    plan,
)
from schemas.topics import DEFAULT_POOL, TopicCatalog, TopicSpec

log = logging.getLogger(__name__)

_UNAVAILABLE = {
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError.REQUEST_TIMED_OUT,
}


class TopicProvisioningError(StoreeError):
    """The broker refused to create or change a topic; the message has its reason."""


def describe_topics(
    admin: AdminClient, names: Sequence[str], timeout: float = 15.0
) -> dict[str, ExistingTopic]:
    """The named topics that exist on the cluster, with their partitions, replication and configs."""
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnavailable(f"cannot list topics: {exc.args[0]}") from exc
    present = [name for name in names if name in metadata.topics and metadata.topics[name].error is None]
    if not present:
        return {}
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in present]
    found = {}
    for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
        entries = _result(future, f"describe configs of {resource.name}", timeout)
        partitions = metadata.topics[resource.name].partitions
        replicas = max((len(p.replicas) for p in partitions.values()), default=0)
        config = {key: entry.value for key, entry in entries.items() if entry.value is not None}
        found[resource.name] = ExistingTopic(resource.name, len(partitions), replicas, config)
    return found


def ensure_topics(
    admin: AdminClient,
    catalog: TopicCatalog,
    *,
    fix_partitions: bool = False,
    fix_config: bool = False,
    timeout: float = 30.0,
) -> EnsureReport:
    """Create missing topics; add partitions or set configs only when asked; report the rest."""
    todo = plan(catalog, describe_topics(admin, catalog.names, timeout))
    created, raced = _create(admin, todo.create, timeout)
    if created:
        # The controller has committed the new topics, but a broker's metadata can lag behind it:
        # return only once they are visible, so callers may produce or describe right away.
        _describe_when_visible(admin, created, timeout)
    matched, drifts = list(todo.matched), list(todo.drift)
    if raced:
        # Someone created these between our look and our create (or metadata lagged): compare them
        # like any existing topic.
        existing = _describe_when_visible(admin, raced, timeout)
        for spec in todo.create:
            if spec.name in existing:
                found = drift_of(spec, existing[spec.name])
                if found:
                    drifts.extend(found)
                else:
                    matched.append(spec.name)
    fixed, remaining = [], []
    for drift in drifts:
        if drift.fix == FIX_PARTITIONS and fix_partitions:
            added = admin.create_partitions(
                [NewPartitions(drift.topic, int(drift.expected))],
                operation_timeout=timeout,
                request_timeout=timeout,
            )
            _result(_only(added), f"add partitions to {drift.topic}", timeout)
        elif drift.fix == FIX_CONFIG and fix_config:
            entry = ConfigEntry(drift.setting, drift.expected, incremental_operation=AlterConfigOpType.SET)
            resource = ConfigResource(ResourceType.TOPIC, drift.topic, incremental_configs=[entry])
            altered = admin.incremental_alter_configs([resource], request_timeout=timeout)
            _result(_only(altered), f"set {drift.setting} on {drift.topic}", timeout)
        else:
            log.warning("drift %s", drift)
            remaining.append(drift)
            continue
        log.info("fixed %s", drift)
        fixed.append(drift)
    return EnsureReport(tuple(created), tuple(matched), tuple(fixed), tuple(remaining))


def _create(admin: AdminClient, specs: Sequence[TopicSpec], timeout: float) -> tuple[list[str], list[str]]:
    """Create topics; return those created and those that turned out to exist already."""
    if not specs:
        return [], []
    new = [NewTopic(s.name, s.partitions, s.replication_factor, config=s.config()) for s in specs]
    created, raced = [], []
    # operation_timeout makes the broker answer only once the topic exists cluster-wide.
    for name, future in admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout).items():
        try:
            _result(future, f"create topic {name}", timeout)
        except TopicProvisioningError as exc:
            if _code(exc.__cause__) != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            raced.append(name)
            continue
        log.info("created topic=%s", name)
        created.append(name)
    return created, raced


def _describe_when_visible(admin: AdminClient, names: list[str], timeout: float) -> dict[str, ExistingTopic]:
    deadline = time.monotonic() + timeout
    while True:
        found = describe_topics(admin, names, timeout)
        if len(found) == len(names):
            return found
        if time.monotonic() > deadline:
            missing = sorted(set(names) - set(found))
            raise KafkaUnavailable(
                f"topics {missing} exist but stay out of the metadata after {timeout:.0f}s"
            )
        time.sleep(0.2)


def _only(futures: Mapping[Any, Future[Any]]) -> Future[Any]:
    (future,) = futures.values()
    return future


def _result(future: Future[Any], what: str, timeout: float) -> Any:
    try:
        return future.result(timeout=timeout)
    except KafkaException as exc:
        if _code(exc) in _UNAVAILABLE:
            raise KafkaUnavailable(f"could not {what}: {exc.args[0]}") from exc
        raise TopicProvisioningError(f"could not {what}: {exc.args[0]}") from exc
    except TimeoutError as exc:
        raise KafkaUnavailable(f"could not {what} within {timeout:.0f}s") from exc


def _code(exc: BaseException | None) -> int | None:
    error = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return error.code() if isinstance(error, KafkaError) else None


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
    bootstrap = args.bootstrap_servers or connection.kafka_bootstrap_servers or _local_bootstrap_servers()
    return admin_client(bootstrap), catalog


def _local_bootstrap_servers() -> str:
    from ops.stack import local_bootstrap_servers  # only when no broker is named: it reads the stack's state

    return local_bootstrap_servers()


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
