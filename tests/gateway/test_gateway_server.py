"""The uvicorn launcher of benches and tests (``ops.gateway_server``): it serves, or says why it cannot.

Serving against the real stack is what ``test_fuzz`` does through it; these cases need no server.
"""

from __future__ import annotations

import socket

import pytest

from ops.gateway_server import HOST, free_port, served


def test_a_free_port_can_be_bound():
    with socket.socket() as listener:
        listener.bind((HOST, free_port()))


def test_a_gateway_that_cannot_start_is_reported_not_waited_for():
    # Settings the gateway refuses: every uvicorn worker exits before it answers.
    broken = {"KAFKA_BOOTSTRAP_SERVERS": "localhost:1", "MONGODB_URL": "mongodb://localhost:1"}
    broken["GPU_POOLS"] = "{"  # not JSON
    with pytest.raises(RuntimeError, match="gateway exited with status"), served(broken, timeout_s=60.0):
        pytest.fail("a gateway with broken settings was served")
