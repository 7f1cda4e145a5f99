"""``python -m streams``: the same as ``storee streams``, with the servers named by the environment."""

from __future__ import annotations

import sys

from ops.runtime.entry import service_main
from streams import commands

if __name__ == "__main__":
    sys.exit(service_main("python -m streams", commands.register, ["streams", *sys.argv[1:]]))
