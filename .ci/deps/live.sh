#!/usr/bin/env bash
# System packages for live emulation (tests/live): a container runtime, a static busybox for the
# quick root filesystem, bpftrace for the sensor, iproute2 for the network namespaces and
# debootstrap for the Debian rootfs of the scenarios that need real tar, zip, gpg and python.
set -euo pipefail
source "$(dirname "$0")/install-missing.bash"
install_missing "live emulation" runc busybox-static bpftrace iproute2 debootstrap
