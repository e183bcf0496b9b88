# Shared by dev.sh and test.sh. Source it; do not run it.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$ROOT/.dev"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }

pg_up() {
  local host=${PGHOST_CHECK:-127.0.0.1} port=${PGPORT_CHECK:-5432}
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$host" -p "$port" -U postgres
  else
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
  fi
}

# PostgreSQL: use the running server on 127.0.0.1:5432; else start the
# machine's cluster; else create and start a private one under .dev/pg.
ensure_postgres() {
  if pg_up; then return 0; fi
  log "PostgreSQL is not running; starting it"
  if command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql/*/main >/dev/null 2>&1; then
    local ver
    ver=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || pg_ctlcluster "$ver" main start || true
    for _ in $(seq 1 50); do pg_up && return 0; sleep 0.2; done
  fi
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bindir" ]; then log "no PostgreSQL binaries found"; return 1; fi
  local pgdir="$DATA/pg"
  local runas=()
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd -r -m postgres
    mkdir -p "$pgdir"; chown postgres "$pgdir"
    runas=(su postgres -s /bin/bash -c)
  fi
  if [ ! -f "$pgdir/PG_VERSION" ]; then
    log "initialising a private PostgreSQL in $pgdir"
    if [ ${#runas[@]} -gt 0 ]; then
      "${runas[@]}" "$bindir/initdb -D '$pgdir' -U postgres --auth=trust >/dev/null"
    else
      "$bindir/initdb" -D "$pgdir" -U postgres --auth=trust >/dev/null
    fi
  fi
  local start="$bindir/pg_ctl -D '$pgdir' -o '-p 5432 -k /tmp -c listen_addresses=127.0.0.1' -l '$pgdir/server.log' start"
  if [ ${#runas[@]} -gt 0 ]; then "${runas[@]}" "$start" >/dev/null; else bash -c "$start" >/dev/null; fi
  for _ in $(seq 1 50); do pg_up && return 0; sleep 0.2; done
  log "PostgreSQL did not come up"; return 1
}

wait_port() { # host port what
  for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.2
  done
  log "$3 did not open $1:$2"; return 1
}

wait_http() { # url what
  for _ in $(seq 1 300); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  log "$2 did not answer $1"; return 1
}
