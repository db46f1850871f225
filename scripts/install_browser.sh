#!/usr/bin/env bash
# What the page's browser test needs, from the package registries only: Debian's chromium (apt) and
# axe-core (npm, the version in tests/browser/package-lock.json). Playwright's Python package comes
# with the venv (pyproject's dev extra); it drives this chromium and downloads no browser of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y --no-install-recommends chromium >/dev/null \
    || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends chromium >/dev/null; }
fi
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
chromium --version
