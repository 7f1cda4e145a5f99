"""Static group membership: a ``group.instance.id`` per member that survives a restart, never shared.

A member's instance id is ``<base>.<slot>``: the base is ``GPU_INSTANCE_ID`` or the host name, plus
the device (``gpu-7.cuda_0``); the slot is the lowest number whose lock file this process could take
(``flock``, released by the kernel when the process dies, however it dies). Two live processes on a
host therefore never share an id, and a member restarted after a crash takes the slot its
predecessor held, so the coordinator hands it the same partitions at once instead of waiting out
the session timeout. Across hosts the base differs (a host name, or a StatefulSet's stable pod
name); set ``GPU_INSTANCE_ID`` where host names are not stable.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from pathlib import Path
from typing import IO

from gpu_consumers.exceptions import GpuConsumerError

log = logging.getLogger(__name__)

MAX_SLOTS = 256
MAX_BASE_CHARS = 180
_ILLEGAL = re.compile(r"[^A-Za-z0-9._-]")


def sanitize(text: str) -> str:
    """Kafka ids take letters, digits, ``.``, ``_`` and ``-``; anything else becomes ``_``."""
    return _ILLEGAL.sub("_", text)[:MAX_BASE_CHARS] or "_"


def instance_base(host: str, device: str, configured: str | None = None) -> str:
    """``<GPU_INSTANCE_ID or host>.<device>``, in the characters Kafka accepts."""
    return sanitize(f"{configured or host}.{device}")


class InstanceClaim:
    """One slot of a base instance id, held while the lock file is open."""

    def __init__(self, base: str, slot: int, handle: IO[str] | None) -> None:
        self.base = base
        self.slot = slot
        self._handle = handle

    @property
    def instance_id(self) -> str:
        return f"{self.base}.{self.slot}"

    def group_instance_id(self, pool: str, tier: str) -> str:
        """The id in one tier group (the groups differ, but a readable id says which member it is)."""
        return sanitize(f"{pool}.{tier}.{self.instance_id}")

    @property
    def held(self) -> bool:
        return self._handle is not None

    def release(self) -> None:
        if self._handle is not None:
            try:
                fcntl.flock(self._handle, fcntl.LOCK_UN)
            finally:
                self._handle.close()
                self._handle = None


def claim_instance(lock_dir: Path, scope: str, base: str, max_slots: int = MAX_SLOTS) -> InstanceClaim:
    """Take the lowest free slot of ``base`` within ``scope`` (the groups' prefix and pool) on this host."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    for slot in range(max_slots):
        path = lock_dir / f"{sanitize(scope)}.{base}.{slot}.lock"
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open for the member's life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        log.info("instance slot claimed base=%s slot=%d lock=%s", base, slot, path)
        return InstanceClaim(base, slot, handle)
    raise GpuConsumerError(
        f"all {max_slots} instance slots of {base} in {lock_dir} are held by live processes"
    )
