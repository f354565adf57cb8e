#!/usr/bin/env bash
# Install what `make run` and `make test` need, from nothing, on Debian/Ubuntu:
#   Debian: postgresql-15-postgis-3 (PostgreSQL 15 + PostGIS 3), redis-server, fonts-dejavu-core
#   Python: uv, then the locked dependencies (uv.lock) into .venv
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "bootstrap: need root or sudo to install Debian packages" >&2; exit 1; fi
fi

need=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
[ -f /usr/share/postgresql/15/extension/postgis.control ] || need+=(postgresql-15-postgis-3)
command -v redis-server >/dev/null || need+=(redis-server)
command -v psql >/dev/null || need+=(postgresql-client-15)
# contract PDFs print ₦, ₹ and accents with DejaVu (settings.contract_pdf_font_path; Courier otherwise)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf ] || need+=(fonts-dejavu-core)
if [ ${#need[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v uv >/dev/null; then
  echo "bootstrap: installing uv"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-pip >/dev/null
  fi
  python3 -m pip install --quiet --disable-pip-version-check uv || python3 -m pip install --quiet --break-system-packages uv
  if ! command -v uv >/dev/null; then  # pip's script dir may not be on PATH (pyenv shims, ~/.local/bin)
    command -v pyenv >/dev/null && pyenv rehash || true
  fi
  if ! command -v uv >/dev/null; then
    $SUDO ln -sf "$(python3 -c 'import uv; print(uv.find_uv_bin())')" /usr/local/bin/uv
  fi
fi
uv sync --frozen --quiet
