"""``python -m gpu_consumers gpu-consumer ...``: the GPU consumer's own commands, for the device children
that :mod:`gpu_consumers.supervisor` starts (they inherit the parent's environment, servers included)."""

from __future__ import annotations

import sys

from gpu_consumers import commands
from ops.runtime.entry import service_main

if __name__ == "__main__":
    sys.exit(service_main("python -m gpu_consumers", commands.register, sys.argv[1:]))
