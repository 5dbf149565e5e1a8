#!/usr/bin/env bash
# Set up npsloop on a fresh Debian machine: system packages when missing, then .venv with
# the project and its development tools. Safe to run again; it does only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v python3 >/dev/null || missing+=(python3)
python3 -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
command -v git >/dev/null || missing+=(git)
# The survey pages are tested in a real browser: Debian's Chromium and its WebDriver.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
# deploy/'s Prometheus configuration, alert rules and dashboard queries are tested with
# Debian's Prometheus and promtool (one package).
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
# docker-compose.yml is validated with Debian's docker-compose (v1 checks a file without an
# engine).
command -v docker-compose >/dev/null || missing+=(docker-compose)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

stamp=.venv/.setup-stamp
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setup: installing npsloop and its tools into .venv"
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$wanted" > "$stamp"
fi
