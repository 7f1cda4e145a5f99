"""Waiting on a condition in integration tests: the benches' :func:`ops.bench.waiting.wait_for`."""

from __future__ import annotations

from ops.bench.waiting import wait_for

__all__ = ["wait_for"]
