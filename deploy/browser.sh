#!/usr/bin/env bash
# Install the headless Chromium and chromedriver that the browser tests drive
# over WebDriver (devkit `browser`), from Debian's `chromium` and
# `chromium-driver` packages: no browser build is downloaded at run time.
#
# Idempotent: apt-get runs only when `chromium` or `chromedriver` is missing
# from PATH. Prints the two versions.
set -euo pipefail

log() { printf 'browser: %s\n' "$*" >&2; }

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
        log "chromium or chromedriver is missing and this is not root: apt-get install chromium chromium-driver, then retry"
        exit 1
    fi
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    log "installing chromium chromium-driver"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver >/dev/null
fi

log "$(chromium --version 2>/dev/null) / $(chromedriver --version)"
