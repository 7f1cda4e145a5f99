"""``storee replay TARGET MODE``: reset a stage's or a group's offsets; a plan unless ``--execute``.

TARGET is a stage (``splitter``, ``batcher``, ``materializer``, ``gpu:<pool>`` or ``gpu:<pool>:<tier>``)
or any consumer group's name. MODE is one of ``--to-earliest``, ``--to-latest``, ``--to-offset N``,
``--shift-by ±N``, ``--to-datetime ISO8601`` (UTC without a zone), ``--by-duration PT10M|10m`` or
``--from-file FILE`` (a plan written by ``--export``, or CSV ``topic,partition,offset``). ``--topic
t[:p,...]`` (repeatable) narrows the reset; without it every topic of the stage (or every topic the
group has committed on) is in scope.

By default the plan is printed (per partition: committed → new offset, records to reprocess or skip,
the time span of the records redone, what the stage redoes) and nothing changes; ``--execute`` commits
the new offsets. A GPU stage is refused without ``--rerender``; with it, the plan names the batch
records whose tasks are rendered again, and ``--execute`` stores that re-render request where the GPU
consumers read it (their output store, ``OUTPUT_DIR``) before it moves the offsets; the request ends
after ``--rerender-ttl`` (default 24h). Any group with active members is refused, naming them and what
stops them.

Exit status: 0 the plan was printed (or applied with ``--execute``); 1 refused (active members, a GPU
stage without ``--rerender``) or an error; 2 the plan changes nothing (every partition is already at
its target), so ``--execute`` had nothing to do.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console

from gpu_consumers.rerender import DEFAULT_TTL_MS, key_of, request_for, write_request
from gpu_consumers.settings import output_dir_of
from ops.replay.exceptions import ReplayError
from ops.replay.plan import ReplayPlan, compute, rerender_windows
from ops.replay.reader import ReplayReader
from ops.replay.spec import (
    Mode,
    ResetSpec,
    TopicScope,
    parse_datetime,
    parse_duration,
    parse_topic,
    read_offsets_file,
)
from ops.replay.stages import GPU_REFUSAL, Target, effect_of, is_gpu, resolve
from ops.replay.table import render
from ops.runtime.config import ConnectionSettings, Env
from ops.runtime.storage import LocalStore

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_NOOP = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    replay = subparsers.add_parser(
        "replay",
        help="reset a stage's or a group's offsets: a plan unless --execute (exit 2: nothing to change)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    replay.add_argument("target", help="splitter, batcher, materializer, gpu:<pool>[:<tier>], or a group")
    modes = replay.add_mutually_exclusive_group(required=True)
    modes.add_argument("--to-earliest", action="store_true", help="the log start")
    modes.add_argument("--to-latest", action="store_true", help="the log end (skip everything)")
    modes.add_argument("--to-offset", type=int, metavar="N", help="offset N on every partition in scope")
    modes.add_argument(
        "--shift-by", type=int, metavar="N", help="N records (negative: back) from the position"
    )
    modes.add_argument("--to-datetime", metavar="ISO8601", help="the first record at or after this time")
    modes.add_argument("--by-duration", metavar="DURATION", help="the first record of the last PT10M / 10m")
    modes.add_argument("--from-file", type=Path, metavar="FILE", help="offsets from an exported plan or CSV")
    replay.add_argument(
        "--topic", action="append", default=[], metavar="T[:P,...]", help="narrow (repeatable)"
    )
    replay.add_argument(
        "--rerender", action="store_true", help="GPU stage: render re-delivered batches again (see --help)"
    )
    replay.add_argument(
        "--rerender-ttl", default="24h", metavar="DURATION", help="how long a re-render request lasts"
    )
    replay.add_argument("--output-dir", type=Path, help="the GPU consumers' output store (OUTPUT_DIR)")
    replay.add_argument("--execute", action="store_true", help="apply the plan (default: print it only)")
    replay.add_argument("--export", type=Path, metavar="FILE", help="write the plan as JSON")
    replay.add_argument("--json", action="store_true", help="print the plan as JSON (same data as the table)")
    replay.add_argument("--bootstrap-servers", help="Kafka to use (default: KAFKA_BOOTSTRAP_SERVERS)")
    replay.set_defaults(handler=_replay)


def spec_of(args: argparse.Namespace, now_ms: int) -> ResetSpec:
    """The parsed mode; by-duration is resolved against ``now_ms`` here, once."""
    if args.to_earliest:
        return ResetSpec(Mode.EARLIEST)
    if args.to_latest:
        return ResetSpec(Mode.LATEST)
    if args.to_offset is not None:
        return ResetSpec(Mode.OFFSET, args.to_offset, label=str(args.to_offset))
    if args.shift_by is not None:
        return ResetSpec(Mode.SHIFT, args.shift_by, label=f"{args.shift_by:+d}")
    if args.to_datetime is not None:
        return ResetSpec(Mode.DATETIME, parse_datetime(args.to_datetime), label=args.to_datetime)
    if args.by_duration is not None:
        back = parse_duration(args.by_duration)
        return ResetSpec(Mode.DURATION, now_ms - int(back.total_seconds() * 1000), label=args.by_duration)
    return ResetSpec(Mode.FILE, offsets=read_offsets_file(args.from_file), label=str(args.from_file))


def plan_target(
    reader: ReplayReader,
    target: Target,
    spec: ResetSpec,
    scopes: list[TopicScope],
    *,
    rerender: bool,
    store: LocalStore | None = None,
    now_ms: int = 0,
    rerender_ttl_ms: int = DEFAULT_TTL_MS,
) -> ReplayPlan:
    """Read ``target``'s group and logs and compute its plan, with effects, times, refusals and, for a
    GPU stage with ``rerender``, the re-render request (stored in ``store`` by ``--execute``)."""
    members = reader.members(target.group)
    committed = reader.committed(target.group)
    topics = _topics(target, committed, scopes, spec)
    states = reader.states(topics, committed, spec.value if spec.is_time else None)
    by_topic = {s.topic: s for s in scopes}
    for scope in scopes:
        have = {s.partition for s in states if s.topic == scope.topic}
        missing = sorted(scope.partitions - have)
        if missing:
            raise ReplayError(f"topic {scope.topic} has no partition(s) {missing} (it has {len(have)})")
    states = [s for s in states if s.topic not in by_topic or by_topic[s.topic].covers(s.partition)]
    plan = compute(target.group, states, spec, target.stages)
    ranges = {(p.topic, p.partition): p.redone for p in plan.partitions if p.redone}
    plan = plan.with_times(reader.record_times({tp: r for tp, r in ranges.items() if r}))
    stages = sorted({p.stage for p in plan.partitions if p.stage})
    effects = {s: e for s in stages if (e := effect_of(s))}
    refusals = []
    if members:
        named = ", ".join(f"{m.client_id} on {m.host}" for m in members)
        refusals.append(
            f"group {target.group} has {len(members)} active member(s): {named}; {target.stop_hint}, "
            "then run this again (offsets can only be reset while the group is empty)"
        )
    gpu = [s for s in stages if is_gpu(s)]
    if gpu and not rerender:
        refusals.append(GPU_REFUSAL.format(stage=gpu[0]))
    request = None
    if gpu and rerender:
        reason = f"storee replay {gpu[0]} {spec.describe()} (group {target.group})"
        windows = rerender_windows(plan, is_gpu)
        request = request_for(target.group, windows, now=now_ms, ttl_ms=rerender_ttl_ms, reason=reason)
    return ReplayPlan(
        plan.group,
        spec,
        plan.partitions,
        members,
        effects,
        tuple(refusals),
        rerender=request,
        rerender_uri=store.uri(key_of(target.group)) if request is not None and store is not None else None,
    )


def _topics(target: Target, committed: dict[tuple[str, int], int], scopes: list[TopicScope],
            spec: ResetSpec) -> list[str]:  # fmt: skip
    named = [s.topic for s in scopes]
    if target.topics:
        known = [t.topic for t in target.topics]
        unknown = sorted(set(named) - set(known))
        if unknown:
            raise ReplayError(f"{unknown} not consumed by group {target.group}; its topics: {known}")
        return named or known
    if named:
        return named
    found = sorted({t for t, _ in committed} | {t for t, _ in spec.offsets})
    if not found:
        raise ReplayError(f"group {target.group} has no committed offsets; name the topics with --topic")
    return found


def _replay(args: argparse.Namespace) -> int:
    env = Env()
    now = int(time.time() * 1000)
    spec = spec_of(args, now)
    scopes = [parse_topic(t) for t in args.topic]
    ttl_ms = int(parse_duration(args.rerender_ttl).total_seconds() * 1000)
    store = LocalStore(args.output_dir or output_dir_of(env))
    bootstrap = args.bootstrap_servers or ConnectionSettings.from_env(env).kafka()
    reader = ReplayReader(bootstrap)
    try:
        plans = [
            plan_target(
                reader,
                t,
                spec,
                scopes,
                rerender=args.rerender,
                store=store,
                now_ms=now,
                rerender_ttl_ms=ttl_ms,
            )  # fmt: skip
            for t in resolve(args.target, env)
        ]
        status = exit_status(plans)
        executed = False
        if status == EXIT_OK and args.execute:
            for plan in plans:
                # Stored first: the group is empty now, so its members read it when they start.
                if plan.rerender is not None:
                    write_request(store, plan.rerender)
                reader.apply(plan.group, plan.new_offsets)
            executed = True
    finally:
        reader.close()
    document = {"executed": executed, "exit_status": status, "plans": [p.as_dict() for p in plans]}
    if args.export:
        args.export.write_text(json.dumps(document, indent=2) + "\n")
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        _print(plans, status, executed=executed, execute=args.execute)
    for refusal in (r for p in plans for r in p.refusals):  # on stderr for people and scripts alike
        print(f"storee replay: refused: {refusal}", file=sys.stderr)
    return status


def exit_status(plans: list[ReplayPlan]) -> int:
    if any(p.refusals for p in plans):
        return EXIT_REFUSED
    if not any(p.changes for p in plans):
        return EXIT_NOOP
    return EXIT_OK


def _print(plans: list[ReplayPlan], status: int, *, executed: bool, execute: bool) -> None:
    console = Console() if sys.stdout.isatty() else Console(width=200)
    for plan in plans:
        console.print(render(plan))
    if status == EXIT_NOOP:
        console.print("nothing to change: every partition is already at its target")
    elif executed:
        console.print("[green]applied[/green]: the offsets above are committed")
        for plan in plans:
            if plan.rerender is not None:
                console.print(f"re-render request {plan.rerender.request_id} stored at {plan.rerender_uri}")
    elif not execute:
        console.print("dry run: nothing changed; add --execute to apply this plan")
