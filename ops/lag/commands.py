"""``storee lag``: consumer lag of Storee's groups (and any named), in records, seconds and status.

``storee lag`` takes ``--samples`` readings ``--interval`` seconds apart (3 and 1 s by default) and
prints a table, or with ``--json`` the snapshot document; ``--watch [S]`` keeps observing and redraws
every S seconds (5 by default), so its windows fill and STALL and growth WARN (which need a full
window) can show. A short one-shot look judges only what it saw: caught up (OK), records older than the
threshold (WARN) or than the window with nobody consuming (STOP), offsets moved back (REWIND).
``--window`` overrides ``LAG_WINDOW_S``. Exit status: 0 when no group is ERR, 2 when one is, 1 on errors.

``storee lag serve`` runs the Prometheus exporter (:mod:`ops.lag.exporter`) on ``--host``:``--port``
(127.0.0.1:9308 by default), observing every ``LAG_SAMPLE_INTERVAL_S``, and runs the end-to-end probe
every ``LAG_PROBE_INTERVAL_S`` (30 s; 0: off; :mod:`ops.lag.prober`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import threading
import time

from rich.console import Console
from rich.live import Live

from ops.lag.exceptions import LagError
from ops.lag.groups import WatchedGroup, select, storee_groups
from ops.lag.monitor import LagMonitor
from ops.lag.reader import LagReader
from ops.lag.service import start_lag_service
from ops.lag.settings import LagSettings
from ops.lag.snapshot import LagSnapshot
from ops.lag.status import GroupStatus
from ops.lag.table import render
from ops.runtime.config import ConnectionSettings, Env

EXIT_OK = 0
EXIT_ERR = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    lag = subparsers.add_parser(
        "lag",
        help="consumer lag per group, topic and tier: records, seconds, status (exit 2: a group is ERR)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _scope_arguments(lag)
    lag.add_argument(
        "--json", action="store_true", help="print the snapshot as JSON (same data as the table)"
    )
    lag.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=5.0,
        metavar="SECONDS",
        help="keep observing and redraw every SECONDS (default 5)",
    )
    lag.add_argument(
        "--samples", type=int, default=3, help="readings in one-shot mode (default: %(default)s)"
    )
    lag.add_argument(
        "--interval", type=float, default=1.0, help="seconds between one-shot readings (default: %(default)s)"
    )
    lag.set_defaults(handler=_lag)
    actions = lag.add_subparsers(dest="lag_action", metavar="ACTION")
    serve = actions.add_parser("serve", help="serve the lag metrics to Prometheus (/metrics, /lag.json)")
    _scope_arguments(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=9308, help="port to listen on (default: %(default)s)")
    serve.add_argument(
        "--sample-interval", type=float, help="seconds between observations (LAG_SAMPLE_INTERVAL_S)"
    )
    serve.set_defaults(handler=_serve)


def _scope_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--group",
        action="append",
        dest="groups",
        default=[],
        metavar="NAME",
        help="only this group (repeat for several); a group that is not Storee's is read on all its topics",
    )
    parser.add_argument(
        "--topic",
        action="append",
        dest="topics",
        default=[],
        metavar="NAME",
        help="only this topic (repeatable)",
    )
    parser.add_argument(
        "--window", type=float, help="status window in seconds (default: LAG_WINDOW_S, else 120)"
    )
    parser.add_argument("--bootstrap-servers", help="Kafka to read (default: KAFKA_BOOTSTRAP_SERVERS)")


def exit_status(snapshot: LagSnapshot) -> int:
    return EXIT_ERR if snapshot.status is GroupStatus.ERR else EXIT_OK


def _setup(args: argparse.Namespace) -> tuple[str, tuple[WatchedGroup, ...], LagSettings]:
    env = Env()
    settings = LagSettings.from_env(env)
    if args.window is not None:
        settings = dataclasses.replace(settings, window_s=args.window)
    bootstrap = args.bootstrap_servers or ConnectionSettings.from_env(env).kafka()
    groups = select(storee_groups(env), args.groups, args.topics)
    return bootstrap, groups, settings


def _lag(args: argparse.Namespace) -> int:
    if args.samples < 1:
        raise LagError(f"--samples must be at least 1, got {args.samples}")
    if args.interval < 0 or (args.watch is not None and args.watch <= 0):
        raise LagError("--interval must not be negative and --watch must be positive")
    bootstrap, groups, settings = _setup(args)
    reader = LagReader(bootstrap, timeout_s=settings.fetch_timeout_s)
    monitor = LagMonitor(reader, groups, settings)
    # Piped into a log (cron, CI), rich would fold the table into 80 columns.
    console = Console() if Console().is_terminal else Console(width=160)
    try:
        if args.watch is not None:
            return _watch(monitor, console, args.watch, as_json=args.json)
        snapshot = monitor.observe()
        for _ in range(args.samples - 1):
            time.sleep(args.interval)  # the readings must be apart in time for the window to mean anything
            snapshot = monitor.observe()
        _print(console, snapshot, as_json=args.json)
        return exit_status(snapshot)
    finally:
        reader.close()


def _print(console: Console, snapshot: LagSnapshot, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(snapshot.as_dict(), indent=2))
    else:
        console.print(render(snapshot))


def _watch(monitor: LagMonitor, console: Console, every: float, *, as_json: bool) -> int:
    snapshot = monitor.observe()
    if as_json:  # one document per line, for a pipe
        try:
            while True:
                print(json.dumps(snapshot.as_dict()), flush=True)
                time.sleep(every)
                snapshot = monitor.observe()
        except KeyboardInterrupt:
            return exit_status(snapshot)
    with Live(render(snapshot), console=console, auto_refresh=False) as live:
        try:
            while True:
                time.sleep(every)
                snapshot = monitor.observe()
                live.update(render(snapshot), refresh=True)
        except KeyboardInterrupt:
            pass
    return exit_status(snapshot)


def _serve(args: argparse.Namespace) -> int:
    bootstrap, groups, settings = _setup(args)
    service = start_lag_service(
        bootstrap, groups, settings, host=args.host, port=args.port, interval_s=args.sample_interval
    )
    console = Console(stderr=True)
    stop = threading.Event()
    # In a container this is process 1, which ignores SIGTERM unless it handles it.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    every = service.sampler.interval_s
    probing = f", probing every {service.prober.interval_s:g}s" if service.prober is not None else ""
    console.print(
        f"lag exporter on {service.url}/metrics (observing every {every:g}s{probing}); Ctrl-C stops"
    )
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()
    return 0
