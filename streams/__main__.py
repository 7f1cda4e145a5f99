"""``python -m streams``: the same as ``storee streams``, with the servers named by the environment.

``python -m streams webhooks`` is ``storee webhooks``, the webhook delivery service."""

from __future__ import annotations

import sys

from ops.runtime.entry import service_main
from streams import commands

if __name__ == "__main__":
    argv = sys.argv[1:]
    command = argv if argv[:1] in (["streams"], ["webhooks"]) else ["streams", *argv]
    sys.exit(service_main("python -m streams", commands.register, command))
