#!/usr/bin/env bash
# Headless Chromium for the HTML report tests (tests/report): the page is opened, screenshotted
# and its DOM dumped, with script payloads planted in telemetry that must stay inert.
set -euo pipefail
source "$(dirname "$0")/install-missing.bash"
install_missing "report test" chromium
