#!/usr/bin/env bash
# The test tools the Python packages cannot bring: a real Prometheus server and promtool (Debian's
# `prometheus` package ships both). tests/ops/test_dashboards.py checks the alert rules with promtool and
# runs every Grafana panel's query against a Prometheus that scrapes the running system.
#
# Idempotent: does nothing when both are already on PATH. Installs with apt-get as root (or through
# sudo); anywhere else it says what to install and exits non-zero. The package's own daemon is kept
# from starting (the tests start their own Prometheus on a free loopback port).
set -euo pipefail

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "install-test-tools: prometheus and promtool are missing; install Debian's 'prometheus' package" \
        "(apt-get install --no-install-recommends prometheus) as root, then run this again" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-tools: no apt-get here; install Prometheus (prometheus and promtool on PATH)" >&2
    exit 1
fi

# invoke-rc.d asks policy-rc.d whether a package may start its service; 101 says no. Only a policy we
# wrote ourselves is removed again.
POLICY=/usr/sbin/policy-rc.d
if [[ ! -e $POLICY ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    trap '"${SUDO[@]}" rm -f "$POLICY"' EXIT
fi

echo "install-test-tools: installing Debian's prometheus package (prometheus, promtool)"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v prometheus >/dev/null && command -v promtool >/dev/null
prometheus --version 2>&1 | head -n 1
