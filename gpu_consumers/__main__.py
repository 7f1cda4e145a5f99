"""``python -m gpu_consumers ...``: the ``storee`` CLI, for device children started by the GPU supervisor."""

from __future__ import annotations

import sys

from ops.cli import main

sys.exit(main())
