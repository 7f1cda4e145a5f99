"""``python -m gpu_consumers ...``: the GPU consumer commands without the rest of the ``storee`` CLI."""

from __future__ import annotations

import sys

from gpu_consumers.commands import main

sys.exit(main())
