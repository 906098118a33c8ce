#!/usr/bin/env bash
# System packages for live emulation (tests/live): a container runtime, a static busybox for the
# quick root filesystem, bpftrace for the sensor, iproute2 for the network namespaces and
# debootstrap for the Debian rootfs of the scenarios that need real tar, zip, gpg and python.
# Idempotent: installs only what is missing, and runs apt-get update at most once.
set -euo pipefail

packages=(runc busybox-static bpftrace iproute2 debootstrap)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "live emulation packages already installed: ${packages[*]}"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "live emulation needs root to install: ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
