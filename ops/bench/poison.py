"""The long poison run as a command: ``tests/e2e/test_poison.py`` with thousands of records.

The poison run lives in the test (its records are drawn by Hypothesis strategies in
``tests/e2e/poison.py``); this command only sizes it through the variables the test reads and runs it
with a pytest timeout to match::

    .venv/bin/python -m ops.bench.poison --records 2000 --good 60     # what `make poison` runs

It prints the test's summary line (records tried, dead-lettered, lost, good stories completed) and every
failed assertion with its evidence, and writes every finding as JSON to a file it names
(``$TMPDIR/storee-poison-<time>.json``); the exit status is pytest's. Everything it starts it stops.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=2000, help="poison records to draw")
    parser.add_argument("--good", type=int, default=60, help="good stories (a third straight to Kafka)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the interleaving order")
    parser.add_argument(
        "--timeout", type=float, default=0.0, help="settle deadline, s (default 60 + 0.5/record + 3/story)"
    )
    parser.add_argument(
        "--task-deadline", type=float, default=300.0, help="start deadline of the poison tasks, seconds"
    )
    parser.add_argument("--quiet", type=float, default=60.0,
                        help="stop waiting once nothing changed this long after every deadline")  # fmt: skip
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    settle = args.timeout or 60 + 0.5 * args.records + 3 * args.good
    report = Path(tempfile.gettempdir()) / f"storee-poison-{time.strftime('%Y%m%d-%H%M%S')}.json"
    env = {
        **os.environ,
        "POISON_RECORDS": str(args.records),
        "POISON_GOOD_STORIES": str(args.good),
        "POISON_SEED": str(args.seed),
        "POISON_TIMEOUT": str(settle),
        "POISON_TASK_DEADLINE_S": str(args.task_deadline),
        "POISON_QUIET": str(args.quiet),
        "POISON_REPORT": str(report),
    }
    command = [
        sys.executable, "-m", "pytest", "tests/e2e/test_poison.py", "-q", "-p", "no:cacheprovider",
        f"--timeout={int(settle + 900)}", *args.pytest_args,
    ]  # fmt: skip
    status = subprocess.call(command, cwd=ROOT, env=env)
    if report.exists():
        print(f"every finding: {report}")
    return status


if __name__ == "__main__":
    sys.exit(main())
