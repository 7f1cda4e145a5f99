"""``python -m tests.streams.stalled_worker``: a streams worker that stops reading a partition.

The fault is the one faust-streaming users report after rebalances, made on demand: partition 0 of
tasks.requested is taken out of the Faust consumer's active partitions behind its back (as a full
buffer does, never undone), so it is no longer fetched although records wait. ``STALL_FAULT=once``
does it once; ``always`` does it again every half second, so only a restart can help.
"""

from __future__ import annotations

import logging
import os
import sys

from faust.types import TP

import streams.app as streams_app
from streams.__main__ import main

log = logging.getLogger("stalled_worker")
FAULT = os.environ.get("STALL_FAULT", "once")
_done = False


@streams_app.app.timer(0.5)
async def _stop_reading_a_partition() -> None:
    global _done
    app = streams_app.app
    tp = TP(streams_app.catalog.tasks_requested, 0)
    if (_done and FAULT == "once") or app.rebalancing or tp not in app.consumer.assignment():
        return
    active = app.consumer._get_active_partitions()
    if tp in active:
        active.discard(tp)
        if not _done:
            log.warning("fault: %s[%d] is no longer read", tp.topic, tp.partition)
        _done = True


if __name__ == "__main__":
    sys.exit(main())
