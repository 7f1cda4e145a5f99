"""Provisioning the topic catalog on a broker: create what is missing, report (and on request fix) drift.

``ops.runtime.topic_plan.plan`` compares the catalog with what the cluster has; ``ensure_topics`` creates what
is missing and, only when asked, applies the two non-destructive fixes (more partitions, topic configs).
Nothing is ever deleted or recreated: other drift (replication factor, more partitions than the catalog) is
reported for an operator. Services that declare their own topics at start (the stream worker) and the ``storee
topics`` command both call :func:`ensure_topics`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
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

from ops.runtime.exceptions import StoreeError
from ops.runtime.kafka import KafkaUnavailable
from ops.runtime.topic_plan import (
    FIX_CONFIG,
    FIX_PARTITIONS,
    EnsureReport,
    ExistingTopic,
    drift_of,
    plan,
)
from schemas.topics import TopicCatalog, TopicSpec

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
        try:
            entries = _result(future, f"describe configs of {resource.name}", timeout)
        except TopicProvisioningError as exc:
            if _code(exc.__cause__) != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
            # In the metadata of one broker, not yet known to the one answering (a new topic on a
            # cluster): not visible yet; callers that wait for it ask again.
            continue
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
