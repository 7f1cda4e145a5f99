"""The mode services a stream worker starts beside its agents: the outlet, and the job view's threads.

Both are I/O shells. :class:`OutletService` serves the outlet's delivery reports and flushes what is
left when the worker stops. :class:`ViewLoops` runs the blocking loops over the job view (the
materializer of :mod:`streams.view_loop`, the deadline sweeper of :mod:`streams.sweep_loop`) in
threads of their own, so their MongoDB I/O never stalls Faust's event loop; each waits out outages
itself, and one that still dies stops the worker, for its supervisor to restart.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import mode

from streams.outlet import KafkaOutlet

log = logging.getLogger(__name__)

# A loop that runs until its event is set: Materializer.run, Sweeper.run.
Loop = Callable[[threading.Event], None]
# Builds the loops when the worker starts (they open their MongoDB client then, not before).
LoopsFactory = Callable[[], Sequence[tuple[str, Loop]]]


class OutletService(mode.Service):
    """Serves the outlet's delivery reports from a thread; closing it flushes what is left."""

    def __init__(self, outlet: KafkaOutlet, **kwargs: Any) -> None:
        self.outlet = outlet
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        self.outlet.start()

    async def on_stop(self) -> None:
        try:
            await self.outlet.flush(wait_out=False)
        finally:
            await asyncio.to_thread(self.outlet.close)


class ViewLoops(mode.Service):
    """Runs the loops ``build_loops`` returns, each in a thread; ``crash_worker`` stops the worker."""

    def __init__(
        self,
        build_loops: LoopsFactory,
        crash_worker: Callable[[BaseException], Awaitable[None]],
        **kwargs: Any,
    ) -> None:
        self.build_loops = build_loops
        self.crash_worker = crash_worker
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        self._event_loop = asyncio.get_running_loop()
        for name, loop in self.build_loops():
            thread = threading.Thread(target=self._run, args=(name, loop), name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, name: str, loop: Loop) -> None:
        try:
            loop(self._stop)
        except Exception:
            log.exception("%s crashed; stopping the worker", name)
            self._stop.set()
            crashed = self.crash_worker(RuntimeError(f"{name} crashed"))
            asyncio.run_coroutine_threadsafe(crashed, self._event_loop)  # type: ignore[arg-type]

    async def on_stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            await asyncio.to_thread(thread.join, 30)
