#!/usr/bin/env bash
# System packages for the response tests (tests/respond): Podman and its Docker-compatible API
# service, runc (crun does not work with these machines' hybrid cgroups), the CNI plugins the
# test network uses, a static busybox for the root filesystem, and iproute2 for the network
# namespace the service runs in. Idempotent: installs only what is missing, and runs apt-get
# update at most once.
set -euo pipefail

packages=(podman runc containernetworking-plugins busybox-static iproute2 util-linux)
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "response test packages already installed: ${packages[*]}"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "the response tests need root to install: ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
