"""``python -m tests.streams.stalled_worker``: a streams worker that stops reading a partition.

The fault is the one faust-streaming users report after rebalances, made on demand: partition 0 of
tasks.requested is taken out of the Faust consumer's active partitions behind its back (as a full
buffer does, never undone), so it is no longer fetched although records wait. ``STALL_FAULT=once``
does it once; ``always`` does it again every half second, so only a restart can help.
"""

from __future__ import annotations

import functools
import logging
import os
import sys

from faust.types import TP

from ops.runtime.entry import service_main
from streams import commands
from streams.app import StreamApp, build_app
from streams.settings import StreamSettings

log = logging.getLogger("stalled_worker")
FAULT = os.environ.get("STALL_FAULT", "once")


def build_stalled(settings: StreamSettings) -> StreamApp:
    """The worker of ``settings``, with a timer that stops it reading partition 0 of tasks.requested."""
    stream_app = build_app(settings)
    app = stream_app.app
    tp = TP(stream_app.catalog.tasks_requested, 0)
    done = False

    @app.timer(0.5)
    async def _stop_reading_a_partition() -> None:
        nonlocal done
        if (done and FAULT == "once") or app.rebalancing or tp not in app.consumer.assignment():
            return
        active = app.consumer._get_active_partitions()
        if tp in active:
            active.discard(tp)
            if not done:
                log.warning("fault: %s[%d] is no longer read", tp.topic, tp.partition)
            done = True

    return stream_app


if __name__ == "__main__":
    register = functools.partial(commands.register, build=build_stalled)
    sys.exit(service_main("python -m tests.streams.stalled_worker", register, ["streams", *sys.argv[1:]]))
