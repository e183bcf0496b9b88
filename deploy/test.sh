#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: unit, property,
# database and end-to-end (real binaries, NATS servers, PostgreSQL).
#
#   ./deploy/test.sh                 the whole suite
#   ./deploy/test.sh -p protocol     extra arguments go to `cargo test`
#
# The load tools in tests/src/bin are run by hand (README, Benchmarks).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

"$ROOT/deploy/install.sh"
ensure_postgres

# Databases left behind by an interrupted earlier run.
psql -h 127.0.0.1 -U postgres -d postgres -Atc \
  "SELECT 'DROP DATABASE \"' || datname || '\" WITH (FORCE);' FROM pg_database WHERE datname LIKE 'ct\_%'" \
  | psql -q -h 127.0.0.1 -U postgres -d postgres >/dev/null 2>&1 || true

export NATS_SERVER_BIN="$ROOT/.tools/bin/nats-server"
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432}"
# #[sqlx::test] creates a fresh database per test through this server
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

log "building the web app"
(
  cd "$ROOT/web"
  # the typed client must be the one generated from web/openapi.json
  npx --no-install openapi-typescript openapi.json -o "$ROOT/.tools/schema.d.ts" >/dev/null 2>&1
  cmp -s "$ROOT/.tools/schema.d.ts" src/api/schema.d.ts \
    || { log "web/src/api/schema.d.ts is stale: run npm run gen in web/"; exit 1; }
  npm run check --silent   # types and Svelte's accessibility checks, warnings fail
  npm run build --silent
)
if cargo fmt --version >/dev/null 2>&1; then
  log "checking formatting"
  cargo fmt --all -- --check
else
  log "rustfmt is not installed: formatting not checked"
fi
if cargo clippy --version >/dev/null 2>&1; then
  log "linting (clippy, warnings fail)"
  cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
else
  log "clippy is not installed: lints not checked"
fi
log "building"
cargo build --workspace --bins --tests --all-features --locked
log "testing"
cargo test --workspace --all-features --locked "$@"
