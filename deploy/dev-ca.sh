#!/usr/bin/env bash
# Creates the development CA and the relay's TLS certificate, idempotently:
#
#   ./deploy/dev-ca.sh [DIR] [--name extra.host ...]
#
# DIR defaults to .dev/relay-ca. It gets ca.pem (edges trust this), ca.key,
# relay.pem and relay.key (valid for localhost, 127.0.0.1 and ::1 plus any
# --name). Existing files are kept; the relay certificate is re-issued from
# the existing CA when missing or when a --name is new. No openssl needed: this runs `relay gen-dev-ca`.
# Development only: the CA key sits next to the certificates.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

DIR="$DATA/relay-ca"
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
  DIR="$1"
  shift
fi

BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/relay"
if [ ! -x "$BIN" ]; then
  log "building the relay"
  cargo build -p relay --bin relay
fi
exec "$BIN" gen-dev-ca "$DIR" "$@"
