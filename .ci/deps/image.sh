#!/usr/bin/env bash
# System packages for the image and manifest tests (tests/deploy): Podman with runc to build the
# image and `podman kube play` the manifests, catatonit for kube play's pause container, and
# debootstrap for the locally made Debian base (no registry is reachable).
set -euo pipefail
source "$(dirname "$0")/install-missing.bash"
install_missing "image test" podman runc catatonit debootstrap
