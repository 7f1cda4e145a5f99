"""``storee up`` (run the whole system until Ctrl-C) and ``storee demo`` (the main job of ``make run``)."""

from __future__ import annotations

import argparse
import signal
import threading
import time
from pathlib import Path

from rich.console import Console

from ops.runtime.config import ConnectionSettings
from ops.runtime.supervisor import ChildEvent
from ops.system import default_system


def register(subparsers: argparse._SubParsersAction) -> None:
    up = subparsers.add_parser(
        "up", help="run the stack, topics, gateway, streams and GPU consumers (Ctrl-C stops)"
    )
    up.set_defaults(handler=_up)
    demo = subparsers.add_parser(
        "demo", help="run the system, render the sample stories, print the results, stop"
    )
    demo.add_argument(
        "--output",
        type=Path,
        default=Path("storee-demo-output"),
        help="where to save the clips (default: %(default)s)",
    )
    demo.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the stories")
    demo.set_defaults(handler=_demo)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _reporter(console: Console):
    def report(event: ChildEvent) -> None:
        style = "red" if event.kind == "exited" else "dim"
        console.print(f"[{style}]{event.name}: {event.kind} ({event.detail})[/{style}]")

    return report


def _up(args: argparse.Namespace) -> int:
    console = Console()
    stop = _stop_on_signals()
    system = default_system(on_event=_reporter(console))
    try:
        with console.status("starting Storee"):
            system.start()
            system.wait_ready()
        s = system.settings
        console.print(
            f"[green]Storee is up[/green]: gateway {s.gateway_url}, Kafka {system.stack.bootstrap_servers}, "
            f"MongoDB {system.stack.mongodb_url}; logs in {system.log_dir}. Ctrl-C stops."
        )
        if system.lag is not None:
            console.print(f"consumer lag: {system.lag.url}/metrics (storee lag for the table)")
        system.wait(stop)
    finally:
        with console.status("stopping"):
            system.stop()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from ops.demo.run import run_demo, summary_table

    # Piped into a log (as in CI), rich would fold the table into 80 columns.
    console = Console() if Console().is_terminal else Console(width=140)
    stop = _stop_on_signals()
    system = default_system(on_event=_reporter(console))
    started = time.monotonic()
    try:
        with console.status("starting Storee (first run: builds the local stack and the tiny model)"):
            system.start()
            system.wait_ready()
        console.print(
            f"Storee is up in {time.monotonic() - started:.0f}s; gateway {system.settings.gateway_url}"
        )
        if stop.is_set():
            return 130
        runs = run_demo(
            system,
            console,
            args.output.resolve(),
            args.timeout,
            ConnectionSettings.from_env().mongodb_database,
        )
        console.print(summary_table(runs))
        failed = [run for run in runs if run.status != "completed"]
        return 1 if failed else 0
    finally:
        with console.status("stopping what the demo started"):
            system.stop()
        console.print(f"done in {time.monotonic() - started:.0f}s")
