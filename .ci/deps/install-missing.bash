#!/usr/bin/env bash
# install_missing LABEL PACKAGE...: install the Debian packages not installed yet (apt-get update
# at most once). Sourced by the .ci/deps/*.sh scripts, which .ci/run runs before `make test`.
install_missing() {
    local label=$1
    shift
    local missing=() package
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
            missing+=("$package")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        echo "$label packages already installed: $*"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "$label needs root to install: ${missing[*]}" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
