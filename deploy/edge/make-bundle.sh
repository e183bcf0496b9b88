#!/usr/bin/env bash
# Makes an edge bundle for one campus box, on the build machine that also
# holds core's NATS identities:
#
#   deploy/edge/make-bundle.sh <edge-id> [<nats-auth dir> <hub CA file>]
#
# It builds edge-node for release, and packs it with nats-server, this kit,
# and the edge's credentials (its leaf seed and users, its remote identity
# on the hub, the hub's CA) into dist/edge-<edge-id>.tar.gz. Copy that to the
# box over a channel you trust: it holds the edge's secrets.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
edge=${1:?usage: make-bundle.sh <edge-id> [<nats-auth dir> <hub CA file>]}
auth=${2:-$ROOT/.dev/nats/auth}
ca=${3:-$ROOT/.dev/relay-ca/ca.pem}
target=${CARGO_TARGET_DIR:-$ROOT/target}

"$ROOT/deploy/install.sh" >/dev/null
cargo build --release --locked -p edge-node --bin edge-node
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
b="$work/edge-$edge"
mkdir -p "$b/bin" "$b/credentials"
cp "$target/release/edge-node" "$ROOT/.tools/bin/nats-server" "$b/bin/"
cp "$ROOT"/deploy/edge/{install-edge.sh,render-leaf-conf,packages.txt,edge.env.example,classroom-edge.service,classroom-edge-leaf.service} "$b/"
for f in "$edge.local.seed" "$edge-leaf-users.conf" "$edge-remote.conf"; do
  [ -r "$auth/$f" ] || { echo "make-bundle: no $auth/$f: run core nats-auth --edge $edge first" >&2; exit 1; }
  cp "$auth/$f" "$b/credentials/"
done
cp "$ca" "$b/credentials/ca.pem"
mkdir -p "$ROOT/dist"
tar -C "$work" -czf "$ROOT/dist/edge-$edge.tar.gz" "edge-$edge"
echo "$ROOT/dist/edge-$edge.tar.gz"
