#!/usr/bin/env bash
# Installs a campus edge on this Debian box from an edge bundle (made on the
# build machine by `deploy/edge/make-bundle.sh <edge-id>`):
#
#   sudo ./install-edge.sh             run from the unpacked bundle
#
# Idempotent. The first run installs the runtime packages, the binaries,
# the units and /etc/classroom/edge.env (from the example), then stops so
# you can fill that file in; the next run starts the edge.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[install-edge] %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "run as root"; exit 1; }

mapfile -t pkgs < <(grep -v '^[[:space:]]*\(#\|$\)' "$here/packages.txt")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

id classroom >/dev/null 2>&1 || useradd --system --home /var/lib/classroom --shell /usr/sbin/nologin classroom
install -d -o classroom -g classroom -m 0750 /var/lib/classroom /var/lib/classroom/edge \
  /var/lib/classroom/leaf /var/lib/classroom/spool
install -d -m 0750 -g classroom /etc/classroom /etc/classroom/credentials
install -m 0755 "$here/bin/edge-node" "$here/bin/nats-server" /usr/local/bin/
install -d /usr/local/lib/classroom
install -m 0755 "$here/render-leaf-conf" /usr/local/lib/classroom/render-leaf-conf
if [ -d "$here/credentials" ]; then
  install -m 0640 -g classroom "$here"/credentials/* /etc/classroom/credentials/
fi
install -m 0644 "$here/classroom-edge.service" "$here/classroom-edge-leaf.service" /etc/systemd/system/
systemctl daemon-reload

if [ ! -f /etc/classroom/edge.env ]; then
  install -m 0640 -g classroom "$here/edge.env.example" /etc/classroom/edge.env
  log "wrote /etc/classroom/edge.env: fill in the values under FILL IN, then run this again"
  exit 0
fi
# check the file renders before anything starts
/usr/local/lib/classroom/render-leaf-conf /etc/classroom/edge.env /var/lib/classroom/leaf.conf
chown classroom:classroom /var/lib/classroom/leaf.conf
systemctl enable --now classroom-edge-leaf.service classroom-edge.service
log "started; follow it with: journalctl -fu classroom-edge"
