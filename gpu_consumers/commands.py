"""``storee gpu-consumer`` and ``storee models make-tiny``.

``storee gpu-consumer --pool NAME [--devices cpu,cuda:1,...]`` runs one group member per device: in
this process for a single device, else one supervised child process each. Without ``--devices`` the
pool's device policy decides (every visible GPU, or the CPU). The members load the pool's pipeline
before joining the groups ``<prefix>gpu-consumers.<pool>.premium`` and ``...<pool>.free`` (static
members: a restarted one gets its partitions back at once) and consume ``batches.<pool>.premium`` and
``batches.<pool>.free``. SIGTERM stops them gracefully and they leave the groups (see
:mod:`gpu_consumers.consumer`).

``storee models make-tiny DIR`` saves the tiny random-weight Wan pipeline to DIR.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    consume = subparsers.add_parser(
        "gpu-consumer", help="run GPU consumer group members for a pool (one per device)"
    )
    consume.add_argument("--pool", default="default", help="pool to serve (default: %(default)s)")
    consume.add_argument(
        "--devices",
        default=None,
        help="comma-separated devices, e.g. cuda:0,cuda:1 or cpu,cpu (default: pool policy)",
    )
    consume.set_defaults(handler=_gpu_consumer)

    models = subparsers.add_parser("models", help="local model files")
    actions = models.add_subparsers(dest="action", metavar="ACTION", required=True)
    tiny = actions.add_parser("make-tiny", help="save a tiny random-weight text-to-video pipeline to DIR")
    tiny.add_argument("dir", type=Path, help="directory to save the pipeline in")
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: %(default)s)")
    tiny.add_argument("--overwrite", action="store_true", help="replace an existing pipeline in DIR")
    tiny.set_defaults(handler=_make_tiny)


def _gpu_consumer(args: argparse.Namespace) -> int:
    from gpu_consumers.member import run_member
    from gpu_consumers.pools import resolve_devices
    from gpu_consumers.settings import GpuConsumerSettings
    from gpu_consumers.supervisor import supervise

    settings = GpuConsumerSettings.from_env()
    pool = settings.pool(args.pool)
    devices = resolve_devices(pool, args.devices)
    if len(devices) == 1:
        return run_member(settings, pool.name, devices[0])
    return supervise(pool.name, devices)


def _make_tiny(args: argparse.Namespace) -> int:
    from gpu_consumers.tiny_model import make_tiny_wan

    path = make_tiny_wan(args.dir, seed=args.seed, overwrite=args.overwrite)
    print(f"tiny text-to-video pipeline saved to {path}")
    return 0
