#!/usr/bin/env bash
# Brings the whole dev stack up on this machine, seeded with demo accounts:
# NATS hub + two leaf nodes, PostgreSQL, core, relay, edge-a and edge-b.
# Ctrl-C stops everything it started.
#
# Every address can be overridden by the environment (see README).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

CORE_PORT="${CORE_PORT:-8080}"
EDGE_A_PORT="${EDGE_A_PORT:-8081}"
EDGE_B_PORT="${EDGE_B_PORT:-8082}"
EDGE_A_UDP="${EDGE_A_UDP:-10001}"
EDGE_B_UDP="${EDGE_B_UDP:-10002}"
RELAY_PORT="${RELAY_PORT:-4443}"
NATS_HUB_PORT="${NATS_HUB_PORT:-4230}"
NATS_LEAF_A_PORT="${NATS_LEAF_A_PORT:-4231}"
NATS_LEAF_B_PORT="${NATS_LEAF_B_PORT:-4232}"
NATS_LEAFNODE_PORT="${NATS_LEAFNODE_PORT:-7422}"
DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/classroom}"
DEMO_PASSWORD="${DEMO_PASSWORD:-classroom-demo}"
DEMO_STUDENTS="${DEMO_STUDENTS:-30}"
# DEV_TLS=1: core, the edges and the relay's JWKS fetches over HTTPS (dev CA
# certificates; trust $DATA/relay-ca/ca.pem). NATS leaf links are TLS always.
DEV_TLS="${DEV_TLS:-0}"
# DEV_S3=1: objects (recordings, decks, exports) in a Garage S3 server
# instead of a shared directory; core and each edge have their own key.
DEV_S3="${DEV_S3:-0}"
S3_PORT="${S3_PORT:-3900}"

"$ROOT/deploy/install.sh"
ensure_postgres

log "building the web app"
(cd "$ROOT/web" && npm run build --silent)
log "building"
cargo build --workspace --bins --all-features
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
NATS="$ROOT/.tools/bin/nats-server"

mkdir -p "$DATA/nats" "$DATA/logs"
PIDS=()
cleanup() {
  log "stopping"
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# Identities: one nkey per NATS link (core on the hub, each edge's leaf link
# with only its own subjects, each edge process on its own leaf), made once
# and kept in $DATA/nats/auth; the leaf links run over TLS from the dev CA.
AUTH="$DATA/nats/auth"   # nats-server resolves includes from the config's folder
CA="$DATA/relay-ca"
"$BIN/core" nats-auth --dir "$AUTH" --edge edge-a --edge edge-b >/dev/null
"$BIN/relay" gen-dev-ca "$CA" --cert nats-hub >/dev/null
SCHEME=http
CURL_CA=()
if [ "$DEV_TLS" = 1 ]; then
  SCHEME=https
  for c in core edge-a edge-b; do "$BIN/relay" gen-dev-ca "$CA" --cert "$c" >/dev/null; done
  CURL_CA=(--cacert "$CA/ca.pem")
fi
wait_http_tls() { # url what
  for _ in $(seq 1 300); do
    curl -fsS "${CURL_CA[@]}" "$1" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  log "$2 did not answer $1"; return 1
}
cat > "$DATA/nats/hub.conf" <<CONF
server_name: hub
listen: 127.0.0.1:$NATS_HUB_PORT
jetstream { store_dir: "$DATA/nats/hub", domain: core, sync_interval: always }
include "auth/hub-users.conf"
leafnodes {
  listen: 127.0.0.1:$NATS_LEAFNODE_PORT
  tls { cert_file: "$CA/nats-hub.pem", key_file: "$CA/nats-hub.key", timeout: 2 }
}
CONF
for leaf in a b; do
  port_var="NATS_LEAF_${leaf^^}_PORT"
  cat > "$DATA/nats/leaf-$leaf.conf" <<CONF
server_name: edge-$leaf
listen: 127.0.0.1:${!port_var}
jetstream { store_dir: "$DATA/nats/edge-$leaf", domain: edge-$leaf, sync_interval: always }
include "auth/edge-$leaf-leaf-users.conf"
leafnodes {
  reconnect: 1
  remotes: [ {
    url: "nats-leaf://127.0.0.1:$NATS_LEAFNODE_PORT"
    include "auth/edge-$leaf-remote.conf"
    tls { ca_file: "$CA/ca.pem" }
  } ]
}
CONF
done

start() { # name, then the command
  local name=$1; shift
  "$@" >"$DATA/logs/$name.log" 2>&1 &
  PIDS+=($!)
}

start nats-hub "$NATS" -c "$DATA/nats/hub.conf"
wait_port 127.0.0.1 "$NATS_HUB_PORT" "NATS hub"
start nats-edge-a "$NATS" -c "$DATA/nats/leaf-a.conf"
start nats-edge-b "$NATS" -c "$DATA/nats/leaf-b.conf"
wait_port 127.0.0.1 "$NATS_LEAF_A_PORT" "NATS leaf edge-a"
wait_port 127.0.0.1 "$NATS_LEAF_B_PORT" "NATS leaf edge-b"

# object storage: a directory both share, or (DEV_S3=1) a Garage bucket
OBJECTS=(--object-store-dir "$DATA/objects")
s3_env() { :; }
if [ "$DEV_S3" = 1 ]; then
  G="$ROOT/.tools/bin/garage"
  GDIR="$DATA/garage"
  mkdir -p "$GDIR"
  [ -f "$GDIR/rpc-secret" ] || openssl rand -hex 32 > "$GDIR/rpc-secret"
  cat > "$GDIR/garage.toml" <<CONF
metadata_dir = "$GDIR/meta"
data_dir = "$GDIR/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$((S3_PORT + 1))"
rpc_public_addr = "127.0.0.1:$((S3_PORT + 1))"
rpc_secret = "$(cat "$GDIR/rpc-secret")"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3_PORT"
root_domain = ".s3.garage.localhost"
CONF
  start garage "$G" -c "$GDIR/garage.toml" server
  for _ in $(seq 1 100); do "$G" -c "$GDIR/garage.toml" node id -q >/dev/null 2>&1 && break; sleep 0.2; done
  if [ ! -f "$GDIR/keys.done" ]; then
    node=$("$G" -c "$GDIR/garage.toml" node id -q | cut -d@ -f1)
    "$G" -c "$GDIR/garage.toml" layout assign -z dc1 -c 1G "$node" >/dev/null
    "$G" -c "$GDIR/garage.toml" layout apply --version 1 >/dev/null
    "$G" -c "$GDIR/garage.toml" bucket create classroom >/dev/null
    for who in core edge-a edge-b; do
      id="GK$(openssl rand -hex 12)"; secret="$(openssl rand -hex 32)"
      "$G" -c "$GDIR/garage.toml" key import --yes "$id" "$secret" -n "$who" >/dev/null
      "$G" -c "$GDIR/garage.toml" bucket allow --read --write classroom --key "$id" >/dev/null
      printf '%s %s\n' "$id" "$secret" > "$GDIR/$who.key"
    done
    touch "$GDIR/keys.done"
  fi
  OBJECTS=(--object-store-url s3://classroom)
  s3_env() { # who: the environment that service reaches the bucket with
    read -r id secret < "$GDIR/$1.key"
    export AWS_ENDPOINT="http://127.0.0.1:$S3_PORT" AWS_ALLOW_HTTP=true AWS_REGION=garage \
      AWS_ACCESS_KEY_ID="$id" AWS_SECRET_ACCESS_KEY="$secret"
  }
  log "objects in Garage (S3 on 127.0.0.1:$S3_PORT, bucket classroom)"
fi

CORE_ARGS=(--listen "127.0.0.1:$CORE_PORT" --public-url "$SCHEME://127.0.0.1:$CORE_PORT"
  --database-url "$DATABASE_URL" --nats-url "nats://127.0.0.1:$NATS_HUB_PORT" --nats-seed-file "$AUTH/core.seed" --data-dir "$DATA/core"
  "${OBJECTS[@]}" --web-dir "$ROOT/web/dist")
if [ "$DEV_TLS" = 1 ]; then CORE_ARGS+=(--tls-cert "$CA/core.pem" --tls-key "$CA/core.key"); fi
s3_env core
"$BIN/core" "${CORE_ARGS[@]}" seed-demo --password "$DEMO_PASSWORD" --students "$DEMO_STUDENTS" \
  >"$DATA/logs/seed.log" 2>&1 || { cat "$DATA/logs/seed.log"; exit 1; }
# edge-a is shared by every tenant; edge-b is the demo campus's own box
"$BIN/core" "${CORE_ARGS[@]}" edge-owner edge-a --shared >>"$DATA/logs/seed.log" 2>&1
"$BIN/core" "${CORE_ARGS[@]}" edge-owner edge-b --tenant demo >>"$DATA/logs/seed.log" 2>&1
start core "$BIN/core" "${CORE_ARGS[@]}"
wait_http_tls "$SCHEME://127.0.0.1:$CORE_PORT/healthz" core

# the relay's TLS certificate comes from a dev CA made on first run; edges
# trust its ca.pem and present relay tokens core issues them
start relay "$BIN/relay" --listen "127.0.0.1:$RELAY_PORT" --dev-ca-dir "$DATA/relay-ca" \
  --core-url "$SCHEME://127.0.0.1:$CORE_PORT" --core-ca "$CA/ca.pem"
wait_http "http://127.0.0.1:$RELAY_PORT/healthz" relay

for e in a b; do
  port_var="EDGE_${e^^}_PORT"; nats_var="NATS_LEAF_${e^^}_PORT"; udp_var="EDGE_${e^^}_UDP"
  EDGE_TLS=()
  if [ "$DEV_TLS" = 1 ]; then EDGE_TLS=(--tls-cert "$CA/edge-$e.pem" --tls-key "$CA/edge-$e.key"); fi
  s3_env "edge-$e"
  start "edge-$e" "$BIN/edge-node" --edge-id "edge-$e" --listen "127.0.0.1:${!port_var}" \
    --public-url "$SCHEME://127.0.0.1:${!port_var}" --nats-url "nats://127.0.0.1:${!nats_var}" \
    --nats-seed-file "$AUTH/edge-$e.local.seed" \
    --core-url "$SCHEME://127.0.0.1:$CORE_PORT" --core-ca "$CA/ca.pem" \
    --data-dir "$DATA/edge-$e" --region "campus-$e" \
    --media-udp "127.0.0.1:${!udp_var}" "${OBJECTS[@]}" "${EDGE_TLS[@]}" \
    --relay-url "moqt://127.0.0.1:$RELAY_PORT" --relay-ca "$DATA/relay-ca/ca.pem"
done
wait_http_tls "$SCHEME://127.0.0.1:$EDGE_A_PORT/healthz" edge-a
wait_http_tls "$SCHEME://127.0.0.1:$EDGE_B_PORT/healthz" edge-b

cat <<TXT

  The classroom stack is up.

  Open $SCHEME://127.0.0.1:$CORE_PORT/ in a browser and sign in (accounts below):
  the admin's console, a teacher's studio, a student's class page.

  core (API)     $SCHEME://127.0.0.1:$CORE_PORT          OpenAPI: /openapi.json
  edge-a         $SCHEME://127.0.0.1:$EDGE_A_PORT          media UDP 127.0.0.1:$EDGE_A_UDP
  edge-b         $SCHEME://127.0.0.1:$EDGE_B_PORT          media UDP 127.0.0.1:$EDGE_B_UDP
  relay          127.0.0.1:$RELAY_PORT (QUIC; /healthz over TCP)
  NATS           hub :$NATS_HUB_PORT (domain core, leaf port $NATS_LEAFNODE_PORT, TLS), leaves :$NATS_LEAF_A_PORT (edge-a) :$NATS_LEAF_B_PORT (edge-b); nkeys only
  PostgreSQL     $DATABASE_URL

  Accounts (password: $DEMO_PASSWORD)
    tenant demo:   admin@demo.test  teacher@demo.test  assistant@demo.test
                   student1@demo.test ... student$DEMO_STUDENTS@demo.test
    tenant other:  admin@other.test  teacher@other.test  student1@other.test

  Edges: edge-a is shared; edge-b belongs to tenant demo. NATS identities in
  $AUTH (never commit them).

  Logs in $DATA/logs. Ctrl-C stops everything.

TXT
wait
