#!/usr/bin/env bash
# System packages for the response tests (tests/respond): Podman and its Docker-compatible API
# service, runc (crun does not work with these machines' hybrid cgroups), the CNI plugins the
# test network uses, a static busybox for the root filesystem, and iproute2 for the network
# namespace the service runs in.
set -euo pipefail
source "$(dirname "$0")/install-missing.bash"
install_missing "response test" podman runc containernetworking-plugins busybox-static iproute2 util-linux
