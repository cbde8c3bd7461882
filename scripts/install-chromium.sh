#!/usr/bin/env bash
# Headless Chromium for the browser tests (tests/browser), idempotent.
#
# Debian's chromium package gives /usr/bin/chromium; Playwright (a PyPI package, in the dev
# extra) drives it through executable_path. `playwright install` is never run: it downloads
# its own browser build, which this network cannot reach and CI does not need.
#
#   bash scripts/install-chromium.sh          # as root, or with sudo available
#   PYTHON=.venv/bin/python bash scripts/install-chromium.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
chromium="${TOOTLAKE_CHROMIUM:-/usr/bin/chromium}"

if [ -x "$chromium" ]; then
    echo "chromium: $("$chromium" --version 2>/dev/null || echo "$chromium")"
else
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "install-chromium: need root (or sudo) for apt-get" >&2; exit 1; }
        sudo="sudo"
    fi
    echo "chromium: installing Debian's package ..."
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
    [ -x "$chromium" ] || { echo "install-chromium: $chromium still missing after apt-get" >&2; exit 1; }
    echo "chromium: $("$chromium" --version 2>/dev/null || echo installed)"
fi

if "$python" -c "import playwright" 2>/dev/null; then
    echo "playwright: $("$python" -m pip show playwright 2>/dev/null | sed -n 's/^Version: //p')"
else
    echo "playwright: installing into $python ..."
    "$python" -m pip install --quiet playwright
fi
